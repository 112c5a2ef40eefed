package pbft

import (
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/wire"
)

func TestStateChunkRequestsAreBoundedPerReplica(t *testing.T) {
	b := newChunkBudget()
	now := time.Unix(1000, 0)
	answered := 0
	// A flood of 1000 chunk requests from replica 3 in one instant, each
	// answered with a full chunk.
	for i := range 1000 {
		r := node.StateRequest{From: 3, Req: &wire.StateRequest{Sequence: 128, StartKey: []byte{byte(i)}}}
		if b.admit(r, now) {
			answered++
			b.charge(3, node.StateChunkBytes)
		}
	}
	if answered*node.StateChunkBytes > stateServeBytesPerSecond+node.StateChunkBytes {
		t.Fatalf("%d chunks answered in one instant; budget %d bytes per second", answered, stateServeBytesPerSecond)
	}
	// Replica 2's transfer of a few MiB is untouched by replica 3's flood.
	for i := range 4 {
		if !b.admit(node.StateRequest{From: 2, Req: &wire.StateRequest{Sequence: 128}}, now) {
			t.Fatalf("replica 2's chunk request %d deferred during replica 3's flood", i)
		}
		b.charge(2, node.StateChunkBytes)
	}
	// The flooder's latest request waits for its bucket, and is answered
	// once it refills; one at most is kept.
	if due := b.due(now); len(due) != 0 {
		t.Fatalf("%d deferred requests answered before the bucket refilled", len(due))
	}
	due := b.due(now.Add(2 * time.Second))
	if len(due) != 1 || due[0].Req.StartKey[0] != byte(999%256) {
		t.Fatalf("after the refill: %d deferred requests answered, want the latest one", len(due))
	}
}
