package execution

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

// windowWorkload issues batches that exercise every way the per-entry
// layout changes a window: new entries in order and out of order,
// duplicates, jumps of H that evict entries (some added by the same
// batch), and whole windows evicted by the window limit.
type windowWorkload struct {
	rng  *rand.Rand
	ids  [][]byte
	next []uint64
}

func (w *windowWorkload) batch() []Request {
	var reqs []Request
	for range 1 + w.rng.IntN(6) {
		c := w.rng.IntN(len(w.ids))
		var n uint64
		switch p := w.rng.IntN(10); {
		case p < 6:
			w.next[c]++
			n = w.next[c]
		case p < 8: // a jump past the window: evicts entries, maybe this batch's
			w.next[c] += 1 + uint64(w.rng.IntN(2*ClientWindow))
			n = w.next[c]
		default: // inside the window: a duplicate or a fill
			n = max(w.next[c], 1) - min(uint64(w.rng.IntN(ClientWindow)), max(w.next[c], 1)-1)
		}
		reqs = append(reqs, Request{ClientID: w.ids[c], RequestNumber: n, Operation: putOp(fmt.Sprintf("k%d", w.rng.IntN(8)), fmt.Sprint(n))})
	}
	return reqs
}

// TestWindowsAcrossRestartAndRollback: after every batch the stored
// window records hold exactly the windows in memory, no entry lost, left
// behind or duplicated; a restart loads the same windows and digest; and
// the rollback records rebuild the state at every checkpoint since the
// last stable one, before and after a restart, entry for entry, restoring
// to that checkpoint's digest. Any storage layout of the reply cache must
// pass it, with a rollback record per batch and per checkpoint interval
// (SetRollbackInterval).
func TestWindowsAcrossRestartAndRollback(t *testing.T) {
	for _, interval := range []uint64{0, 10} {
		t.Run(fmt.Sprintf("interval=%d", interval), func(t *testing.T) { testWindowsAcrossRestartAndRollback(t, interval) })
	}
}

func testWindowsAcrossRestartAndRollback(t *testing.T, interval uint64) {
	const limit, checkpoint, batches = 3, 10, 120
	dir := t.TempDir()
	r := openLimited(t, dir, limit)
	defer func() { r.db.Close() }()
	r.exe.SetRollbackInterval(interval)
	if err := r.exe.TrackRollback(0); err != nil {
		t.Fatal(err)
	}
	w := &windowWorkload{rng: rand.New(rand.NewPCG(21, 7)), next: make([]uint64, 5)}
	for i := range w.next {
		w.ids = append(w.ids, fmt.Appendf(nil, "client-%d", i))
	}
	digests := make(map[uint64][32]byte)
	states := make(map[uint64][]*wire.KeyValue)
	stable := uint64(0)
	checkRollback := func(label string) {
		t.Helper()
		for s := stable; s <= r.exe.LastExecuted(); s += checkpoint {
			if s == 0 {
				continue
			}
			snap, err := r.exe.SnapshotAt(s)
			if err != nil {
				t.Fatalf("%s: SnapshotAt(%d): %v", label, s, err)
			}
			if got := flatten(chunkAll(t, snap, 97)); !sameEntries(got, states[s]) {
				t.Fatalf("%s: rolled back to %d: %d entries, want the %d stored then", label, s, len(got), len(states[s]))
			}
			dst := openLimited(t, t.TempDir(), limit)
			if d := restoreChunks(t, dst, chunkAll(t, snap, 97)); d != digests[s] {
				t.Fatalf("%s: restored %d to digest %x, want %x", label, s, d, digests[s])
			}
			dst.db.Close()
			snap.Release()
		}
	}
	for seq := uint64(1); seq <= batches; seq++ {
		apply(t, r.exe, seq, w.batch()...)
		digests[seq] = r.exe.StateDigest()
		if got, want := storedWindows(t, r), windowsOf(r.exe); !maps.Equal(got, want) {
			t.Fatalf("seq %d: the %d stored windows differ from the %d in memory", seq, len(got), len(want))
		}
		if seq%checkpoint == 0 {
			states[seq] = flatten(chunkAll(t, takeSnapshot(t, r.exe), 1<<20))
		}
		if seq%25 == 0 {
			checkRollback(fmt.Sprintf("seq %d", seq))
			before := windowsOf(r.exe)
			r.db.Close()
			r = openLimited(t, dir, limit)
			r.exe.SetRollbackInterval(interval)
			if err := r.exe.TrackRollback(stable); err != nil {
				t.Fatal(err)
			}
			if got := windowsOf(r.exe); !maps.Equal(got, before) || r.exe.StateDigest() != digests[seq] {
				t.Fatalf("seq %d: restart loaded other windows or digest", seq)
			}
			checkRollback(fmt.Sprintf("seq %d, restarted", seq))
		}
		if seq%40 == 0 {
			stable = seq - checkpoint
			if err := r.exe.TrackRollback(stable); err != nil {
				t.Fatal(err)
			}
		}
	}
}
