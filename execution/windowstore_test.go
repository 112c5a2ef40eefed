package execution

import (
	"errors"
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

// TestPerEntryWindowsAcrossRestartAndRollback: after every batch the
// stored records (one key per entry) hold exactly the windows in memory,
// no entry lost, left behind or duplicated; a restart loads the same
// windows and digest; and the rollback records rebuild the state at every
// checkpoint since the last stable one, before and after a restart, entry
// for entry, restoring to that checkpoint's digest.
func TestPerEntryWindowsAcrossRestartAndRollback(t *testing.T) {
	const limit, checkpoint, batches = 3, 10, 120
	dir := t.TempDir()
	r := openLimited(t, dir, limit)
	defer func() { r.db.Close() }()
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
			t.Fatalf("seq %d: stored windows %v differ from those in memory %v", seq, got, want)
		}
		if seq%checkpoint == 0 {
			states[seq] = flatten(chunkAll(t, takeSnapshot(t, r.exe), 1<<20))
		}
		if seq%25 == 0 {
			checkRollback(fmt.Sprintf("seq %d", seq))
			before := windowsOf(r.exe)
			r.db.Close()
			r = openLimited(t, dir, limit)
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

// TestRestoreFinishRejectsInconsistentWindows: window records that pass
// RestoreChunk one by one but do not form windows fail RestoreFinish,
// which keeps the marker.
func TestRestoreFinishRejectsInconsistentWindows(t *testing.T) {
	last := &wire.KeyValue{Key: []byte(executorLastKey), Value: []byte{0, 0, 0, 0, 0, 0, 0, 9}}
	header := func(id string, high uint64) *wire.KeyValue {
		return &wire.KeyValue{Key: appendWindowKey(nil, id), Value: appendWindowHeader(nil, high, 9)}
	}
	entry := func(id string, n uint64) *wire.KeyValue {
		return &wire.KeyValue{Key: appendEntryKey(nil, id, n), Value: []byte("r")}
	}
	cases := map[string][]*wire.KeyValue{
		"entry without header":      {last, entry("c", 3)},
		"entry of another client":   {last, header("b", 3), entry("b", 3), entry("c", 3)},
		"entry above H":             {last, header("c", 3), entry("c", 3), entry("c", 4)},
		"entry too old":             {last, header("c", 100), entry("c", 36), entry("c", 100)},
		"H without entry":           {last, header("c", 3), entry("c", 2)},
		"header without entries":    {last, header("c", 3)},
		"last header without entry": {last, header("b", 3), entry("b", 3), header("c", 3)},
	}
	for name, chunk := range cases {
		t.Run(name, func(t *testing.T) {
			r := openReplica(t, t.TempDir())
			defer r.db.Close()
			if err := r.exe.RestoreBegin(); err != nil {
				t.Fatal(err)
			}
			if err := r.exe.RestoreChunk(chunk); err != nil {
				t.Fatalf("chunk refused early: %v", err)
			}
			if _, err := r.exe.RestoreFinish(); !errors.Is(err, errCorruptWindow) {
				t.Fatalf("RestoreFinish = %v, want errCorruptWindow", err)
			}
			if on, _ := r.db.TransferInProgress(); !on {
				t.Fatal("marker cleared by a failed RestoreFinish")
			}
		})
	}
}
