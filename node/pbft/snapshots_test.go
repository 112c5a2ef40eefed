package pbft

import (
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/wire"
)

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
