package pbft

import (
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/statetransfer"
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

// fakeSnapshot is a servedSnapshot that records its release.
type fakeSnapshot struct {
	seq      uint64
	released bool
}

func (f *fakeSnapshot) Sequence() uint64 { return f.seq }
func (f *fakeSnapshot) Chunk([]byte, int) ([]*wire.KeyValue, []byte, error) {
	return nil, nil, nil
}
func (f *fakeSnapshot) Release() { f.released = true }

// TestSnapshotsBelowTheStableOneAreKeptWhileRead: a new stable checkpoint
// keeps the previous stable snapshot (a transfer of it may be under way)
// and those a transfer read recently, at most maxReadSnapshotsKept, and
// releases the rest; a snapshot no transfer read for
// readSnapshotRetention goes at the next stable checkpoint.
func TestSnapshotsBelowTheStableOneAreKeptWhileRead(t *testing.T) {
	s := newServedSnapshots()
	snaps := map[uint64]*fakeSnapshot{}
	for _, seq := range []uint64{128, 256, 384, 512, 640} {
		snaps[seq] = &fakeSnapshot{seq: seq}
		s.add(snaps[seq])
	}
	now := time.Unix(1000, 0)
	if s.read(128, now) == nil || s.read(256, now) == nil || s.read(999, now) != nil {
		t.Fatal("read")
	}
	s.stable(512, now.Add(time.Second))
	// 384 (the previous stable one) and 256 (read) kept; 128 (read, but
	// beyond the count) released.
	for seq, want := range map[uint64]bool{128: true, 256: false, 384: false, 512: false, 640: false} {
		if snaps[seq].released != want {
			t.Errorf("after stable 512: snapshot %d released %v, want %v", seq, snaps[seq].released, want)
		}
	}
	s.stable(640, now.Add(readSnapshotRetention+time.Second))
	// 512 (previous stable) kept; 256 and 384 unread for the retention.
	for seq, want := range map[uint64]bool{256: true, 384: true, 512: false, 640: false} {
		if snaps[seq].released != want {
			t.Errorf("after stable 640: snapshot %d released %v, want %v", seq, snaps[seq].released, want)
		}
	}
	if len(s.bySeq) != 2 || len(s.lastRead) != 0 {
		t.Fatalf("holding %d snapshots and %d read times", len(s.bySeq), len(s.lastRead))
	}
}

// TestAWindowStaysWithinTheBudget: requests for windows of many large
// chunks from one replica in one instant are answered up to the byte
// budget (plus the one chunk that overdraws it), and the rest of the
// window that overdrew it is deferred, not dropped: once the bucket
// refills it continues where it stopped.
func TestAWindowStaysWithinTheBudget(t *testing.T) {
	b := newChunkBudget()
	now := time.Unix(1000, 0)
	const size = node.StateChunkBytes * 3 / 2 // a chunk and its frame can exceed StateChunkBytes
	sent := 0
	answer := func(r node.StateRequest) (int, *wire.StateChunk) {
		sent++
		return size, &wire.StateChunk{Sequence: r.Req.Sequence, StartKey: r.Req.StartKey,
			NextKey: []byte{r.Req.GetStartKey()[0] + 1}}
	}
	deferred := false
	for range 100 {
		r := node.StateRequest{From: 3, Req: &wire.StateRequest{Sequence: 128, StartKey: []byte{0}, Chunks: 1000}}
		if b.admit(r, now) && b.window(r, now, answer) {
			deferred = true
			break
		}
	}
	if sent*size > stateServeBytesPerSecond+size || !deferred {
		t.Fatalf("%d chunks sent in one instant (deferred %v); budget %d bytes per second", sent, deferred, stateServeBytesPerSecond)
	}
	due := b.due(now.Add(2 * time.Second))
	if len(due) != 1 || due[0].Req.GetChunks() >= statetransfer.MaxChunksPerRequest || due[0].Req.StartKey[0] == 0 {
		t.Fatalf("deferred %v, want the rest of one window", due)
	}
}
