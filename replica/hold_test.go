package replica

import (
	"container/heap"
	"testing"

	"github.com/pbftnode/pbftnode/protocol"
)

// TestHeldFramesBounded: a Delayer's queue takes at most maxHeldFrames
// frames and maxHeldBytes bytes, and gives them back by due tick, in the
// order held within a tick.
func TestHeldFramesBounded(t *testing.T) {
	n := &Driver{}
	for i := range maxHeldFrames {
		if !n.hold(uint64(10-i%3), protocol.Outbound{To: uint32(i), Kind: protocol.KindPrePrepare}, []byte{1}) {
			t.Fatalf("frame %d refused below the count bound", i)
		}
	}
	if n.hold(1, protocol.Outbound{Kind: protocol.KindPrePrepare}, []byte{1}) {
		t.Fatalf("frame %d held beyond maxHeldFrames", maxHeldFrames+1)
	}
	var prev heldFrame
	for i := 0; len(n.hooks.held) > 0; i++ {
		f := heap.Pop(&n.hooks.held).(heldFrame)
		if i > 0 && (f.due < prev.due || (f.due == prev.due && f.out.To < prev.out.To)) {
			t.Fatalf("frame for %d due %d came after frame for %d due %d", f.out.To, f.due, prev.out.To, prev.due)
		}
		prev = f
	}

	n = &Driver{}
	big := make([]byte, maxHeldBytes/2)
	if !n.hold(5, protocol.Outbound{Kind: protocol.KindPrePrepare}, big) || !n.hold(5, protocol.Outbound{Kind: protocol.KindPrePrepare}, big) {
		t.Fatal("frames refused below the byte bound")
	}
	if n.hold(5, protocol.Outbound{Kind: protocol.KindPrePrepare}, []byte{1}) {
		t.Fatal("a frame held beyond maxHeldBytes")
	}
}
