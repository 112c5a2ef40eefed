package apphost

import (
	"testing"
)

// TestSnapshotTriggers: a snapshot is taken when the journal would pass
// MaxJournalBytes; one over MaxSnapshotBytes, or a failed Snapshot call,
// is skipped and the journal goes on, and no batch is lost.
func TestSnapshotTriggers(t *testing.T) {
	t.Run("journal bytes", func(t *testing.T) {
		a := newTestApp()
		r := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 1000, MaxJournalBytes: 100})
		r.applyRange(1, 12)
		if s := r.host.Stats(); s.Snapshots == 0 {
			t.Fatalf("stats %+v, want snapshots triggered by the journal size", s)
		}
		if r.host.journalBytes > 100 {
			t.Fatalf("journal of %d bytes over MaxJournalBytes", r.host.journalBytes)
		}
		ref, _ := reference(t, 12)
		checkAgainst(t, r, a, ref)
	})
	t.Run("too big", func(t *testing.T) {
		a := newTestApp()
		r := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 2, MaxSnapshotBytes: 16})
		r.applyRange(1, 9)
		if s := r.host.Stats(); s.Snapshots != 0 || r.countKeys(journalPrefix) != 9 {
			t.Fatalf("stats %+v, %d journal entries: want no snapshot and the whole journal", s, r.countKeys(journalPrefix))
		}
		// The journal alone brings a restarted application back.
		a.restart()
		r.applyRange(10, 11)
		ref, _ := reference(t, 11)
		checkAgainst(t, r, a, ref)
	})
	t.Run("snapshot call fails", func(t *testing.T) {
		a := newTestApp()
		r := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 3})
		r.applyRange(1, 2)
		a.mu.Lock()
		a.failSnapshots = 1 // the Snapshot call after batch 3
		a.mu.Unlock()
		r.apply(3)
		if s := r.host.Stats(); s.Snapshots != 0 || r.host.Health() == nil {
			t.Fatalf("stats %+v, Health %v: want no snapshot and the failure reported", s, r.host.Health())
		}
		r.applyRange(4, 7) // no snapshot before 6 (3 + SnapshotEvery)
		if s := r.host.Stats(); s.Snapshots != 1 || r.host.manifest.state.Sequence != 6 || r.host.Health() != nil {
			t.Fatalf("stats %+v, snapshot at %d, Health %v: want one snapshot at 6, healthy", s, r.host.manifest.state.Sequence, r.host.Health())
		}
		a.restart()
		r.applyRange(8, 9)
		ref, _ := reference(t, 9)
		checkAgainst(t, r, a, ref)
	})
}

// TestRollbackResyncs: a batch the application executed but the replica
// did not record (Rollback) is executed again on a resynced application,
// not on top of itself, even by an application that would execute it
// again.
func TestRollbackResyncs(t *testing.T) {
	a := newTestApp()
	a.lenient = true
	r := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 4})
	r.applyRange(1, 5)
	r.host.Begin()
	if _, err := r.host.ExecuteBatch(6, batchAt(6)); err != nil {
		t.Fatal(err)
	}
	r.host.Rollback()
	r.applyRange(6, 8)
	ref, _ := reference(t, 8)
	checkAgainst(t, r, a, ref)
	if s := r.host.Stats(); s.Restores != 1 || s.ReplayedBatches != 1 || s.Retries != 0 {
		t.Fatalf("stats %+v, want 1 restore (snapshot at 4) and 1 replayed batch (5), no retry", s)
	}
}
