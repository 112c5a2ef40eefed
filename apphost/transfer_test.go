package apphost

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/wire"
)

// sourceEntries runs replica A to sequence 10 (snapshot at 8, journal 9
// and 10) and returns it and its state snapshot's entries and digest.
func sourceEntries(t *testing.T) (*replica, *testApp, []*wire.KeyValue, [32]byte) {
	t.Helper()
	a := newTestApp()
	src := openReplica(t, t.TempDir(), a, Options{SnapshotEvery: 4})
	src.applyRange(1, 10)
	snap, err := src.exe.TakeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var entries []*wire.KeyValue
	var start []byte
	for {
		chunk, next, err := snap.Chunk(start, 64)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, chunk...)
		if next == nil {
			break
		}
		start = next
	}
	return src, a, entries, snap.Digest()
}

// restoreInto restores entries into r, three per chunk, and returns the
// first error.
func restoreInto(r *replica, entries []*wire.KeyValue, want [32]byte) error {
	if err := r.exe.RestoreBegin(); err != nil {
		return err
	}
	for c := range slices.Chunk(entries, 3) {
		if err := r.exe.RestoreChunk(c); err != nil {
			return err
		}
	}
	_, err := r.exe.RestoreFinishExpect(want)
	return err
}

// cloneEntries deep-copies entries, so a tampering does not leak.
func cloneEntries(entries []*wire.KeyValue) []*wire.KeyValue {
	out := make([]*wire.KeyValue, len(entries))
	for i, e := range entries {
		out[i] = &wire.KeyValue{Key: bytes.Clone(e.GetKey()), Value: bytes.Clone(e.GetValue())}
	}
	return out
}

func findEntry(t *testing.T, entries []*wire.KeyValue, key []byte) int {
	t.Helper()
	for i, e := range entries {
		if bytes.Equal(e.GetKey(), key) {
			return i
		}
	}
	t.Fatalf("no entry %q", key)
	return -1
}

func TestStateTransferRestoresFreshReplica(t *testing.T) {
	src, srcApp, entries, digest := sourceEntries(t)
	b := newTestApp()
	dst := openReplica(t, t.TempDir(), b, Options{SnapshotEvery: 4})
	if err := restoreInto(dst, entries, digest); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !reflect.DeepEqual(b.state(), srcApp.state()) || dst.host.Recorded() != src.host.Recorded() {
		t.Fatalf("restored application differs:\n got %+v\nwant %+v", b.state(), srcApp.state())
	}
	if s := dst.host.Stats(); s.Restores < 1 || s.ReplayedBatches != 2 {
		t.Fatalf("stats %+v, want a restore and 2 replayed batches", s)
	}
	// Both go on and agree.
	src.applyRange(11, 14)
	dst.applyRange(11, 14)
	if src.exe.StateDigest() != dst.exe.StateDigest() || !reflect.DeepEqual(b.state(), srcApp.state()) {
		t.Fatal("replicas diverge after the transfer")
	}
}

// TestStateTransferRejectsTampering restores a replica from tampered
// entries: each attempt fails (never a panic) and the replica can then
// restore the genuine entries.
func TestStateTransferRejectsTampering(t *testing.T) {
	_, srcApp, entries, digest := sourceEntries(t)
	retag := func(e *wire.KeyValue, reqs []execution.Request) { e.Value = encodeJournal(reqs) }
	tamperings := []struct {
		name   string
		tamper func([]*wire.KeyValue) []*wire.KeyValue
	}{
		{"chunk content changed", func(es []*wire.KeyValue) []*wire.KeyValue {
			e := es[findEntry(t, es, chunkKey(0))]
			e.Value = bytes.Replace(e.Value, []byte(`"k1":"v`), []byte(`"k1":"x`), 1)
			return es
		}},
		{"chunk undecodable", func(es []*wire.KeyValue) []*wire.KeyValue {
			e := es[findEntry(t, es, chunkKey(0))]
			e.Value[0] = '!' // same size: only the application can tell
			return es
		}},
		{"journal payload changed", func(es []*wire.KeyValue) []*wire.KeyValue {
			reqs := batchAt(9)
			reqs[0].Operation = []byte("k0=stolen")
			retag(es[findEntry(t, es, journalKey(9))], reqs)
			return es
		}},
		{"journal request dropped", func(es []*wire.KeyValue) []*wire.KeyValue {
			retag(es[findEntry(t, es, journalKey(9))], batchAt(9)[1:])
			return es
		}},
		{"journal gap", func(es []*wire.KeyValue) []*wire.KeyValue {
			return slices.Delete(es, findEntry(t, es, journalKey(9)), findEntry(t, es, journalKey(9))+1)
		}},
		{"journal cut short", func(es []*wire.KeyValue) []*wire.KeyValue {
			return slices.Delete(es, findEntry(t, es, journalKey(10)), findEntry(t, es, journalKey(10))+1)
		}},
		{"journal garbage", func(es []*wire.KeyValue) []*wire.KeyValue {
			es[findEntry(t, es, journalKey(9))].Value = []byte{0xff, 0xff, 0xff}
			return es
		}},
		{"manifest claims another chunk", func(es []*wire.KeyValue) []*wire.KeyValue {
			e := es[findEntry(t, es, []byte(manifestKey))]
			m, err := decodeManifest(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			m.chunks++
			m.totalBytes = uint64(m.chunks-1)*ChunkSize + 1
			e.Value = m.encode()
			return es
		}},
		{"derived record sent", func(es []*wire.KeyValue) []*wire.KeyValue {
			i := findEntry(t, es, journalKey(9)) // a/x/d sorts before a/x/j/
			return slices.Insert(es, i, &wire.KeyValue{Key: []byte(recordedKey), Value: make([]byte, recordedSize)})
		}},
	}
	b := newTestApp()
	dst := openReplica(t, t.TempDir(), b, Options{SnapshotEvery: 4})
	for _, tc := range tamperings {
		err := restoreInto(dst, tc.tamper(cloneEntries(entries)), digest)
		if err == nil {
			t.Fatalf("%s: restore succeeded", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
		if err := dst.exe.RestoreAbort(); err != nil {
			t.Fatalf("%s: abort: %v", tc.name, err)
		}
	}
	if err := restoreInto(dst, entries, digest); err != nil {
		t.Fatalf("genuine restore after the tampered ones: %v", err)
	}
	if !reflect.DeepEqual(b.state(), srcApp.state()) {
		t.Fatal("restored application differs from the source")
	}
	if errors.Is(dst.host.Health(), ErrBrokenApplication) {
		t.Fatalf("Health after the genuine restore: %v", dst.host.Health())
	}
}

// TestOpenDuringInterruptedTransfer: a replica that crashed in the middle
// of a state transfer (partial records, marker set) opens again; the
// executor discards the partial state and a new transfer succeeds.
func TestOpenDuringInterruptedTransfer(t *testing.T) {
	_, srcApp, entries, digest := sourceEntries(t)
	dir := t.TempDir()
	b := newTestApp()
	dst := openReplica(t, dir, b, Options{SnapshotEvery: 4})
	if err := dst.exe.RestoreBegin(); err != nil {
		t.Fatal(err)
	}
	// The journal and the manifest arrive; the crash comes before the chunks.
	if err := dst.exe.RestoreChunk(entries[:findEntry(t, entries, chunkKey(0))]); err != nil {
		t.Fatal(err)
	}
	dst.close()
	b.restart()
	dst = openReplica(t, dir, b, Options{SnapshotEvery: 4})
	if dst.exe.LastExecuted() != 0 || dst.countKeys(hostPrefix) != 0 {
		t.Fatalf("after the interrupted transfer: last executed %d, %d host records", dst.exe.LastExecuted(), dst.countKeys(hostPrefix))
	}
	if err := restoreInto(dst, entries, digest); err != nil {
		t.Fatalf("restore after the interrupted one: %v", err)
	}
	if !reflect.DeepEqual(b.state(), srcApp.state()) {
		t.Fatal("restored application differs from the source")
	}
}
