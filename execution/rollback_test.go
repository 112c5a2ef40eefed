package execution

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/pbftnode/pbftnode/wire"
)

func sameEntries(a, b []*wire.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y *wire.KeyValue) bool {
		return string(x.Key) == string(y.Key) && string(x.Value) == string(y.Value)
	})
}

// TestSnapshotAtRollsBackAcrossARestart: with TrackRollback on, the state
// at an earlier executed sequence is rebuilt from the current state and
// the rollback records, after a restart too (when the goleveldb snapshot
// taken there is gone): it serves the same entries, in chunks of any
// size, and restores to the same digest. Records at or below the
// sequence given to TrackRollback are deleted.
func TestSnapshotAtRollsBackAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	src, at20 := trackedPast20(t, dir)
	want := flatten(chunkAll(t, at20, 1<<20))
	if src.exe.StateDigest() == at20.Digest() {
		t.Fatal("later batches did not change the digest; the test proves nothing")
	}
	check := func(exe *Executor) {
		t.Helper()
		snap, err := exe.SnapshotAt(20)
		if err != nil {
			t.Fatalf("SnapshotAt(20): %v", err)
		}
		defer snap.Release()
		for _, size := range []int{1, 40, 1 << 20} {
			if got := flatten(chunkAll(t, snap, size)); !sameEntries(got, want) {
				t.Fatalf("chunks of %d bytes: %d entries differ from the %d at sequence 20", size, len(got), len(want))
			}
		}
		dst := openReplica(t, t.TempDir())
		defer dst.db.Close()
		if d := restoreChunks(t, dst, chunkAll(t, snap, 64)); d != at20.Digest() {
			t.Fatalf("restored digest %x, want %x", d, at20.Digest())
		}
	}
	check(src.exe)

	at20.Release()
	src.db.Close()
	src = openReplica(t, dir)
	defer src.db.Close()
	check(src.exe)
	if err := src.exe.TrackRollback(20); err != nil {
		t.Fatal(err)
	}
	check(src.exe)
	if _, err := src.exe.SnapshotAt(19); !errors.Is(err, ErrRollbackUnavailable) {
		t.Fatalf("SnapshotAt(19) after TrackRollback(20): %v, want ErrRollbackUnavailable", err)
	}
	buildState(t, src.exe, 38, 40)
	check(src.exe)
}

// trackedPast20 opens a replica in dir with TrackRollback on, executes
// sequences 1 to 37 and returns it with a snapshot taken at 20.
func trackedPast20(t *testing.T, dir string) (*testReplica, *StateSnapshot) {
	t.Helper()
	src := openReplica(t, dir)
	if err := src.exe.TrackRollback(0); err != nil {
		t.Fatal(err)
	}
	buildState(t, src.exe, 1, 20)
	at20 := takeSnapshot(t, src.exe)
	buildState(t, src.exe, 21, 37)
	return src, at20
}

// TestSnapshotAtWithoutRecords: batches applied with TrackRollback off
// cannot be rolled back.
func TestSnapshotAtWithoutRecords(t *testing.T) {
	src := openReplica(t, t.TempDir())
	defer src.db.Close()
	buildState(t, src.exe, 1, 5)
	if err := src.exe.TrackRollback(0); err != nil {
		t.Fatal(err)
	}
	buildState(t, src.exe, 6, 8)
	if _, err := src.exe.SnapshotAt(4); !errors.Is(err, ErrRollbackUnavailable) {
		t.Fatalf("SnapshotAt(4): %v, want ErrRollbackUnavailable", err)
	}
	snap, err := src.exe.SnapshotAt(5)
	if err != nil {
		t.Fatalf("SnapshotAt(5): %v", err)
	}
	snap.Release()
}

// TestSnapshotAtWithEvictions: windows a batch creates, changes and
// evicts are rolled back too (their records come from the executor's
// memory, not from database reads).
func TestSnapshotAtWithEvictions(t *testing.T) {
	src := openLimited(t, t.TempDir(), 2)
	defer src.db.Close()
	if err := src.exe.TrackRollback(0); err != nil {
		t.Fatal(err)
	}
	clients := [][]byte{[]byte("client-a"), []byte("client-b"), []byte("client-c")}
	numbers := make([]uint64, len(clients))
	batch := func(seq uint64) {
		c := seq % 3
		numbers[c]++
		apply(t, src.exe, seq, Request{ClientID: clients[c], RequestNumber: numbers[c], Operation: putOp("k", string(rune('a'+seq)))})
	}
	for seq := uint64(1); seq <= 5; seq++ {
		batch(seq)
	}
	at5 := takeSnapshot(t, src.exe)
	want := flatten(chunkAll(t, at5, 1<<20))
	for seq := uint64(6); seq <= 11; seq++ {
		batch(seq)
	}
	snap, err := src.exe.SnapshotAt(5)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	if got := flatten(chunkAll(t, snap, 30)); !sameEntries(got, want) {
		t.Fatalf("rolled back to 5: %d entries, want the %d at 5", len(got), len(want))
	}
	dst := openLimited(t, t.TempDir(), 2)
	defer dst.db.Close()
	if d := restoreChunks(t, dst, chunkAll(t, snap, 30)); d != at5.Digest() {
		t.Fatalf("restored digest %x, want %x", d, at5.Digest())
	}
}

// rollbackRecordSequences returns, for each key with undo records, the
// sequences that recorded it, ascending.
func rollbackRecordSequences(t *testing.T, r *testReplica) map[string][]uint64 {
	t.Helper()
	out := make(map[string][]uint64)
	iter := r.db.LevelDB().NewIterator(util.BytesPrefix([]byte(rollbackPrefix)), nil)
	defer iter.Release()
	for iter.Next() {
		k := iter.Key()[len(rollbackPrefix):]
		if len(k) != 8 {
			t.Fatalf("a rollback record of one key (%q): each batch writes one record", k)
		}
		seq := binary.BigEndian.Uint64(k)
		if err := walkUndoRecord(iter.Value(), func(key []byte, _ int) {
			out[string(key)] = append(out[string(key)], seq)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := iter.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRollbackRecordsOncePerInterval: with SetRollbackInterval(k) a key
// written at every batch has one undo record per interval of k sequences,
// at its first write there (again after a restart, whose executor knows
// nothing of the records before it); the states at the multiples of k
// are still rebuilt exactly, and SnapshotAt refuses the other sequences.
func TestRollbackRecordsOncePerInterval(t *testing.T) {
	const k = 4
	dir := t.TempDir()
	r := openReplica(t, dir)
	open := func() {
		r.exe.SetRollbackInterval(k)
		if err := r.exe.TrackRollback(0); err != nil {
			t.Fatal(err)
		}
	}
	open()
	states := make(map[uint64][]*wire.KeyValue)
	digests := make(map[uint64][32]byte)
	batch := func(seq uint64) {
		reqs := []Request{{ClientID: alice, RequestNumber: seq, Operation: putOp("hot", fmt.Sprint(seq))}}
		if seq >= 6 {
			reqs = append(reqs, Request{ClientID: bob, RequestNumber: seq, Operation: putOp("late", fmt.Sprint(seq))})
		}
		apply(t, r.exe, seq, reqs...)
		snap := takeSnapshot(t, r.exe)
		states[seq], digests[seq] = flatten(chunkAll(t, snap, 1<<20)), snap.Digest()
		snap.Release()
	}
	for seq := uint64(1); seq <= 10; seq++ {
		batch(seq)
	}
	r.db.Close()
	r = openReplica(t, dir)
	defer func() { r.db.Close() }()
	open()
	for seq := uint64(11); seq <= 13; seq++ {
		batch(seq)
	}
	records := rollbackRecordSequences(t, r)
	for key, want := range map[string][]uint64{
		kvDataPrefix + "hot":                {1, 5, 9, 11, 13},
		kvDataPrefix + "late":               {6, 9, 11, 13},
		executorReplyPrefix + string(alice): {1, 5, 9, 11, 13},
		executorLastKey:                     {1, 5, 9, 11, 13},
	} {
		if got := records[key]; !slices.Equal(got, want) {
			t.Errorf("records of %q at %v, want %v", key, got, want)
		}
	}
	for _, seq := range []uint64{4, 8, 12} {
		snap, err := r.exe.SnapshotAt(seq)
		if err != nil {
			t.Fatalf("SnapshotAt(%d): %v", seq, err)
		}
		if got := flatten(chunkAll(t, snap, 50)); !sameEntries(got, states[seq]) {
			t.Fatalf("rolled back to %d: %d entries, want the %d stored then", seq, len(got), len(states[seq]))
		}
		dst := openReplica(t, t.TempDir())
		if d := restoreChunks(t, dst, chunkAll(t, snap, 50)); d != digests[seq] {
			t.Fatalf("restored %d to digest %x, want %x", seq, d, digests[seq])
		}
		dst.db.Close()
		snap.Release()
	}
	if _, err := r.exe.SnapshotAt(6); !errors.Is(err, ErrRollbackUnavailable) {
		t.Fatalf("SnapshotAt(6) = %v, want ErrRollbackUnavailable", err)
	}
}
