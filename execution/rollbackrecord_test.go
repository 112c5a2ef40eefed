package execution

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// rewriteRecordsPerKey replaces the batch records of the sequences in
// [from, to] by records of the earlier form, one per key
// (e/u/<sequence><key> = 0 | 1 value), as a replica of an earlier version
// wrote them; it returns how many it rewrote.
func rewriteRecordsPerKey(t *testing.T, r *testReplica, from, to uint64) int {
	t.Helper()
	ldb := r.db.LevelDB()
	iter := ldb.NewIterator(&util.Range{Start: rollbackSequencePrefix(from), Limit: rollbackSequencePrefix(to + 1)}, nil)
	rewrite := new(leveldb.Batch)
	n := 0
	for iter.Next() {
		k, rec := bytes.Clone(iter.Key()), iter.Value()
		rewrite.Delete(k)
		if err := walkUndoRecord(rec, func(key []byte, at int) {
			value, present, err := undoValue(rec, at)
			if err != nil {
				t.Fatal(err)
			}
			old := []byte{0}
			if present {
				old = append([]byte{1}, value...)
			}
			rewrite.Put(append(bytes.Clone(k), key...), old)
		}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	iter.Release()
	if err := ldb.Write(rewrite, nil); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSnapshotAtReadsRecordsOfTheEarlierForm: a replica whose records
// above its stable checkpoint were written one per key (by an earlier
// version, before an upgrade) still rebuilds the state from them, alone
// or followed by batch records written after the upgrade.
func TestSnapshotAtReadsRecordsOfTheEarlierForm(t *testing.T) {
	for _, upgradedAt := range []uint64{37, 28} {
		dir := t.TempDir()
		src, at20 := trackedPast20(t, dir)
		want := flatten(chunkAll(t, at20, 1<<20))
		at20.Release()
		src.db.Close()

		src = openReplica(t, dir)
		if n := rewriteRecordsPerKey(t, src, 21, upgradedAt); n == 0 {
			t.Fatal("no records rewritten; the test proves nothing")
		}
		snap, err := src.exe.SnapshotAt(20)
		if err != nil {
			t.Fatalf("upgraded at %d: SnapshotAt(20): %v", upgradedAt, err)
		}
		if got := flatten(chunkAll(t, snap, 64)); !sameEntries(got, want) {
			t.Fatalf("upgraded at %d: %d entries differ from the %d at sequence 20", upgradedAt, len(got), len(want))
		}
		snap.Release()
		src.db.Close()
	}
}

// TestCorruptRollbackRecordsAreRefused: a batch record that does not
// decode makes SnapshotAt fail with an error, never a panic or a wrong
// state, and no byte string makes the record's decoder panic.
func TestCorruptRollbackRecordsAreRefused(t *testing.T) {
	src := openReplica(t, t.TempDir())
	defer src.db.Close()
	if err := src.exe.TrackRollback(0); err != nil {
		t.Fatal(err)
	}
	buildState(t, src.exe, 1, 10)
	key := rollbackSequencePrefix(7)
	rec, err := src.db.LevelDB().Get(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{rec[:len(rec)-1], append(bytes.Clone(rec), 9), {0xff}, {3, 'a', 'b', 'c', 2}} {
		if err := src.db.LevelDB().Put(key, bad, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := src.exe.SnapshotAt(5); err == nil || errors.Is(err, ErrRollbackUnavailable) {
			t.Fatalf("record %x: SnapshotAt(5) gave %v, want a corruption error", bad, err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(4)) // small bytes: lengths that often fit
		}
		_ = walkUndoRecord(b, func(_ []byte, at int) {
			if _, _, err := undoValue(b, at); err != nil {
				t.Fatalf("%x: an entry walked but its value does not decode: %v", b, err)
			}
		})
	}
}
