package execution

import (
	"fmt"
	"path/filepath"
	"testing"
)

// preloadedReplica preloads keys entries of valueBytes into a fresh
// database in dir and opens a replica on it.
func preloadedReplica(t *testing.T, dir string, keys, valueBytes int) *testReplica {
	t.Helper()
	if _, err := PreloadDataDir(dir, keys, valueBytes); err != nil {
		t.Fatalf("PreloadDataDir: %v", err)
	}
	r := openReplica(t, dir)
	t.Cleanup(func() { r.db.Close() })
	return r
}

// TestPreloadDigestEqualsExecutedPuts: a preloaded replica holds exactly
// the state, and the state digest, of one whose KV executed the same puts
// before sequence 1, also after both execute the same batch, and its
// stored accumulator matches its entries.
func TestPreloadDigestEqualsExecutedPuts(t *testing.T) {
	const keys, valueBytes = 500, 40
	pre := preloadedReplica(t, t.TempDir(), keys, valueBytes)

	exec := openReplica(t, t.TempDir())
	t.Cleanup(func() { exec.db.Close() })
	for i := range keys {
		value := appendPreloadValue(nil, i, valueBytes)
		if res := mustDecode(t, exec.kv.Execute(EncodePut(PreloadKey(i), value))); res.Error != "" {
			t.Fatalf("put %d: %s", i, res.Error)
		}
	}
	if got, want := pre.exe.StateDigest(), exec.exe.StateDigest(); got != want {
		t.Fatalf("preloaded state digest %x, executed puts %x", got, want)
	}
	if pre.exe.LastExecuted() != 0 {
		t.Fatalf("preloaded LastExecuted %d, want 0", pre.exe.LastExecuted())
	}
	recomputed, err := pre.kv.RecomputeDigest()
	if err != nil {
		t.Fatalf("RecomputeDigest: %v", err)
	}
	if recomputed != pre.kv.Digest() {
		t.Fatalf("stored accumulator %x, entries %x", pre.kv.Digest(), recomputed)
	}
	// The benchmark's key names hit the entries.
	if v, ok := pre.kv.Get([]byte("k0000042")); !ok || len(v) != valueBytes {
		t.Fatalf("k0000042: found %v, %d bytes", ok, len(v))
	}
	for _, r := range []*testReplica{pre, exec} {
		apply(t, r.exe, 1, Request{ClientID: alice, RequestNumber: 1, Operation: putOp("k0000007", "new")},
			Request{ClientID: bob, RequestNumber: 1, Operation: EncodeDelete([]byte("k0000008"))})
	}
	if got, want := pre.exe.StateDigest(), exec.exe.StateDigest(); got != want {
		t.Fatalf("after sequence 1: preloaded state digest %x, executed puts %x", got, want)
	}
}

// TestPreloadRefusesUsedDatabase: Preload never writes over replicated
// state.
func TestPreloadRefusesUsedDatabase(t *testing.T) {
	dir := t.TempDir()
	r := openReplica(t, dir)
	apply(t, r.exe, 1, Request{ClientID: alice, RequestNumber: 1, Operation: putOp("a", "1")})
	if err := r.db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := PreloadDataDir(dir, 10, 10); err == nil {
		t.Fatal("PreloadDataDir over executed state succeeded")
	}
}

// TestPreloadCopyAndStateTransfer: a copy of a preloaded database opens
// with the same state digest, and a wiped replica restores a preloaded
// replica's snapshot (taken after some batches) by state transfer, with
// the digest verified.
func TestPreloadCopyAndStateTransfer(t *testing.T) {
	const keys, valueBytes = 2000, 100
	srcDir := t.TempDir()
	if _, err := PreloadDataDir(srcDir, keys, valueBytes); err != nil {
		t.Fatalf("PreloadDataDir: %v", err)
	}
	copyDir := filepath.Join(t.TempDir(), "data")
	if err := CopyDatabase(srcDir, copyDir); err != nil {
		t.Fatalf("CopyDatabase: %v", err)
	}
	src := openReplica(t, srcDir)
	t.Cleanup(func() { src.db.Close() })
	cp := openReplica(t, copyDir)
	t.Cleanup(func() { cp.db.Close() })
	if got, want := cp.exe.StateDigest(), src.exe.StateDigest(); got != want {
		t.Fatalf("copy's state digest %x, original %x", got, want)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		apply(t, src.exe, seq, Request{ClientID: alice, RequestNumber: seq, Operation: putOp("k0000001", "v")})
	}
	snap := takeSnapshot(t, src.exe)
	wiped := openReplica(t, t.TempDir())
	t.Cleanup(func() { wiped.db.Close() })
	if err := wiped.exe.RestoreBegin(); err != nil {
		t.Fatalf("RestoreBegin: %v", err)
	}
	chunks := chunkAll(t, snap, 16<<10)
	if len(chunks) < 2 {
		t.Fatalf("%d chunks: want several", len(chunks))
	}
	for i, c := range chunks {
		if err := wiped.exe.RestoreChunk(c); err != nil {
			t.Fatalf("RestoreChunk %d: %v", i, err)
		}
	}
	got, err := wiped.exe.RestoreFinishExpect(snap.Digest())
	if err != nil {
		t.Fatalf("RestoreFinishExpect: %v", err)
	}
	if got != src.exe.StateDigest() || wiped.exe.LastExecuted() != 5 {
		t.Fatalf("restored digest %x at %d, source %x at 5", got, wiped.exe.LastExecuted(), src.exe.StateDigest())
	}
	if !maps2Equal(kvStateFromDB(t, wiped.db), kvStateFromDB(t, src.db)) {
		t.Fatal("restored entries differ from the source's")
	}
	if n := len(kvStateFromDB(t, wiped.db)); n != keys {
		t.Fatalf("restored %d entries, want %d", n, keys)
	}
}

// AppendPreloadKey writes what fmt's "k%07d" writes, for every width.
func TestAppendPreloadKeyMatchesFmt(t *testing.T) {
	for _, i := range []int{0, 1, 9, 10, 123, 999999, 1000000, 9999999, 10000000, 123456789, -1, -42} {
		if got, want := string(AppendPreloadKey([]byte("x"), i)), fmt.Sprintf("xk%07d", i); got != want {
			t.Errorf("AppendPreloadKey(%d) = %q, want %q", i, got, want)
		}
	}
}
