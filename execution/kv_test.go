package execution

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"testing"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
	"github.com/syndtr/goleveldb/leveldb"
)

func openStorage(t testing.TB, dir string) *storage.DB {
	t.Helper()
	db, err := storage.Open(dir, storage.DefaultOptions(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	return db
}

func newTestKV(t testing.TB) *KV {
	t.Helper()
	db := openStorage(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatalf("NewKV: %v", err)
	}
	return kv
}

func exec(t testing.TB, kv *KV, op []byte) *wire.KVResult {
	t.Helper()
	res, err := DecodeResult(kv.Execute(op))
	if err != nil {
		t.Fatalf("DecodeResult: %v", err)
	}
	return res
}

func wantResult(t *testing.T, step string, got *wire.KVResult, ok bool, value []byte) {
	t.Helper()
	if got.GetError() != "" {
		t.Fatalf("%s: unexpected error result %q", step, got.GetError())
	}
	if got.GetOk() != ok || !bytes.Equal(got.GetValue(), value) {
		t.Fatalf("%s: got ok=%v value=%q, want ok=%v value=%q", step, got.GetOk(), got.GetValue(), ok, value)
	}
}

func TestKVSemantics(t *testing.T) {
	kv := newTestKV(t)
	k := []byte("k")
	wantResult(t, "get absent", exec(t, kv, EncodeGet(k)), false, nil)
	wantResult(t, "delete absent", exec(t, kv, EncodeDelete(k)), true, nil)
	wantResult(t, "cas expecting value on absent key", exec(t, kv, EncodeCAS(k, []byte("x"), false, []byte("y"))), false, nil)
	wantResult(t, "get still absent", exec(t, kv, EncodeGet(k)), false, nil)
	wantResult(t, "cas absent->v1", exec(t, kv, EncodeCAS(k, nil, true, []byte("v1"))), true, nil)
	wantResult(t, "get v1", exec(t, kv, EncodeGet(k)), true, []byte("v1"))
	wantResult(t, "cas absent on present key", exec(t, kv, EncodeCAS(k, nil, true, []byte("v9"))), false, []byte("v1"))
	wantResult(t, "cas mismatch", exec(t, kv, EncodeCAS(k, []byte("nope"), false, []byte("v9"))), false, []byte("v1"))
	wantResult(t, "get after mismatch", exec(t, kv, EncodeGet(k)), true, []byte("v1"))
	wantResult(t, "cas v1->v2", exec(t, kv, EncodeCAS(k, []byte("v1"), false, []byte("v2"))), true, nil)
	wantResult(t, "get v2", exec(t, kv, EncodeGet(k)), true, []byte("v2"))
	wantResult(t, "put v3", exec(t, kv, EncodePut(k, []byte("v3"))), true, nil)
	wantResult(t, "get v3", exec(t, kv, EncodeGet(k)), true, []byte("v3"))
	wantResult(t, "put empty value", exec(t, kv, EncodePut(k, nil)), true, nil)
	wantResult(t, "get empty value is found", exec(t, kv, EncodeGet(k)), true, nil)
	wantResult(t, "cas empty->v4", exec(t, kv, EncodeCAS(k, nil, false, []byte("v4"))), true, nil)
	wantResult(t, "delete", exec(t, kv, EncodeDelete(k)), true, nil)
	wantResult(t, "get deleted", exec(t, kv, EncodeGet(k)), false, nil)
	if kv.Digest() != ([32]byte{}) {
		t.Fatalf("empty state digest = %x, want zero", kv.Digest())
	}
}

func TestKVMalformedOperationsGiveErrorResults(t *testing.T) {
	kv := newTestKV(t)
	bigKey := bytes.Repeat([]byte("k"), MaxKeySize+1)
	bigValue := bytes.Repeat([]byte("v"), MaxValueSize+1)
	cases := map[string][]byte{
		"garbage":              {0xff, 0xff, 0xff},
		"empty operation":      nil,
		"truncated":            EncodePut([]byte("key"), []byte("value"))[:5],
		"put key too large":    EncodePut(bigKey, []byte("v")),
		"put value too large":  EncodePut([]byte("k"), bigValue),
		"get key too large":    EncodeGet(bigKey),
		"delete key too large": EncodeDelete(bigKey),
		"cas value too large":  EncodeCAS([]byte("k"), nil, true, bigValue),
		"cas old and absent":   EncodeCAS([]byte("k"), []byte("old"), true, []byte("new")),
	}
	for name, op := range cases {
		res := exec(t, kv, op)
		if res.GetError() == "" || res.GetOk() {
			t.Errorf("%s: result %+v, want an error result", name, res)
		}
	}
	// Limits themselves are accepted.
	maxKey := bytes.Repeat([]byte("k"), MaxKeySize)
	wantResult(t, "put at limits", exec(t, kv, EncodePut(maxKey, bytes.Repeat([]byte("v"), MaxValueSize))), true, nil)
	if err := kvStateErr(kv, map[string][]byte{string(maxKey): bytes.Repeat([]byte("v"), MaxValueSize)}); err != nil {
		t.Fatal(err)
	}
}

// kvStateErr checks that kv holds exactly want.
func kvStateErr(kv *KV, want map[string][]byte) error {
	snap, err := kv.Snapshot()
	if err != nil {
		return err
	}
	entries, _, err := parseSnapshot(snap)
	if err != nil {
		return err
	}
	if len(entries) != len(want) {
		return fmt.Errorf("state has %d entries, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		v, ok := want[string(e.key)]
		if !ok || !bytes.Equal(v, e.value) {
			return fmt.Errorf("state entry %q has unexpected value (present in want: %v)", e.key, ok)
		}
	}
	return nil
}

// randomOp returns a random operation over a small key space so that
// operations collide.
func randomOp(rng *rand.Rand) []byte {
	key := fmt.Appendf(nil, "key-%d", rng.Intn(16))
	value := fmt.Appendf(nil, "value-%d", rng.Intn(8))
	switch rng.Intn(5) {
	case 0, 1:
		return EncodePut(key, value)
	case 2:
		return EncodeGet(key)
	case 3:
		return EncodeDelete(key)
	default:
		if rng.Intn(2) == 0 {
			return EncodeCAS(key, nil, true, value)
		}
		return EncodeCAS(key, fmt.Appendf(nil, "value-%d", rng.Intn(8)), false, value)
	}
}

func TestKVIdenticalResultsAcrossDatabases(t *testing.T) {
	a, b := newTestKV(t), newTestKV(t)
	rng := rand.New(rand.NewSource(1))
	for i := range 2000 {
		op := randomOp(rng)
		ra, rb := a.Execute(op), b.Execute(op)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("op %d: results differ: %x vs %x", i, ra, rb)
		}
		if a.Digest() != b.Digest() {
			t.Fatalf("op %d: digests differ", i)
		}
	}
	sa, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa, sb) {
		t.Fatal("snapshots of identically fed databases differ")
	}
}

func TestKVDigestMatchesRecomputation(t *testing.T) {
	dir := t.TempDir()
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(42))
	for i := range 3000 {
		kv.Execute(randomOp(rng))
		if i%100 == 99 {
			fresh, err := kv.RecomputeDigest()
			if err != nil {
				t.Fatal(err)
			}
			if fresh != kv.Digest() {
				t.Fatalf("after %d ops: incremental digest %x != recomputed %x", i+1, kv.Digest(), fresh)
			}
		}
	}
	want := kv.Digest()
	if want == ([32]byte{}) {
		t.Fatal("digest of a non-empty state is zero")
	}
	db.Close()
	db = openStorage(t, dir)
	defer db.Close()
	reopened, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	if reopened.Digest() != want {
		t.Fatalf("digest after reopen %x, want %x", reopened.Digest(), want)
	}
}

func TestKVDigestDependsOnStateOnly(t *testing.T) {
	ab, ba, other := newTestKV(t), newTestKV(t), newTestKV(t)
	ab.Execute(EncodePut([]byte("a"), []byte("1")))
	ab.Execute(EncodePut([]byte("b"), []byte("2")))
	ba.Execute(EncodePut([]byte("b"), []byte("2")))
	ba.Execute(EncodePut([]byte("x"), []byte("tmp")))
	ba.Execute(EncodePut([]byte("a"), []byte("0")))
	ba.Execute(EncodeCAS([]byte("a"), []byte("0"), false, []byte("1")))
	ba.Execute(EncodeDelete([]byte("x")))
	if ab.Digest() != ba.Digest() {
		t.Fatalf("same state via different orders: %x vs %x", ab.Digest(), ba.Digest())
	}
	other.Execute(EncodePut([]byte("a"), []byte("1")))
	other.Execute(EncodePut([]byte("b"), []byte("3")))
	if other.Digest() == ab.Digest() {
		t.Fatal("different values give the same digest")
	}
	// Moving bytes between key and value must change the digest.
	moved := newTestKV(t)
	moved.Execute(EncodePut([]byte("a1"), nil))
	moved.Execute(EncodePut([]byte("b"), []byte("2")))
	if moved.Digest() == ab.Digest() {
		t.Fatal("key/value boundary is not bound into the digest")
	}
}

func TestKVSnapshotRestoreRoundTrip(t *testing.T) {
	src := newTestKV(t)
	rng := rand.New(rand.NewSource(7))
	for range 500 {
		src.Execute(randomOp(rng))
	}
	src.Execute(EncodePut([]byte{}, []byte("empty key")))
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	dst := newTestKV(t)
	// Pre-existing state that the restore must wipe.
	dst.Execute(EncodePut([]byte("stale"), []byte("gone")))
	if err := dst.Restore(snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if dst.Digest() != src.Digest() {
		t.Fatalf("restored digest %x, want %x", dst.Digest(), src.Digest())
	}
	fresh, err := dst.RecomputeDigest()
	if err != nil || fresh != src.Digest() {
		t.Fatalf("restored recomputed digest %x (err %v), want %x", fresh, err, src.Digest())
	}
	again, err := dst.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, snap) {
		t.Fatal("snapshot of restored state differs from the source snapshot")
	}
	wantResult(t, "stale key gone", exec(t, dst, EncodeGet([]byte("stale"))), false, nil)
	for i := range 16 {
		key := fmt.Appendf(nil, "key-%d", i)
		if !bytes.Equal(src.Execute(EncodeGet(key)), dst.Execute(EncodeGet(key))) {
			t.Fatalf("get %s differs after restore", key)
		}
	}
}

func TestKVRestoreRejectsMalformedSnapshots(t *testing.T) {
	kv := newTestKV(t)
	kv.Execute(EncodePut([]byte("keep"), []byte("me")))
	before := kv.Digest()
	entry := func(k, v string) []byte {
		out := []byte{byte(len(k))}
		out = append(out, k...)
		out = append(out, byte(len(v)))
		return append(out, v...)
	}
	magic := []byte(kvSnapshotMagic)
	bigLen := []byte{0x80, 0x80, 0x80, 0x80, 0x01} // 2^28
	cases := map[string][]byte{
		"bad magic":        []byte("not a snapshot"),
		"truncated value":  append(append([]byte{}, magic...), entry("a", "1")[:3]...),
		"bad varint":       append(append([]byte{}, magic...), 0xff),
		"key over limit":   append(append(append([]byte{}, magic...), bigLen...), 'k'),
		"unsorted keys":    append(append(append([]byte{}, magic...), entry("b", "1")...), entry("a", "2")...),
		"duplicate keys":   append(append(append([]byte{}, magic...), entry("a", "1")...), entry("a", "2")...),
		"missing value":    append(append([]byte{}, magic...), 1, 'a'),
		"empty, no magic":  nil,
		"magic prefix cut": magic[:5],
	}
	for name, snap := range cases {
		if err := kv.Restore(snap); err == nil {
			t.Errorf("%s: Restore accepted a malformed snapshot", name)
		}
		if kv.Digest() != before {
			t.Fatalf("%s: rejected restore changed the state", name)
		}
	}
	wantResult(t, "state kept", exec(t, kv, EncodeGet([]byte("keep"))), true, []byte("me"))
}

func TestKVBatchOverlayAndRollback(t *testing.T) {
	db := openStorage(t, t.TempDir())
	defer db.Close()
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	kv.Begin()
	kv.Execute(EncodePut([]byte("a"), []byte("1")))
	wantResult(t, "read own write", exec(t, kv, EncodeGet([]byte("a"))), true, []byte("1"))
	if _, err := db.LevelDB().Get(dataKey([]byte("a")), nil); !errors.Is(err, leveldb.ErrNotFound) {
		t.Fatalf("batch write reached the database before Stage: err %v", err)
	}
	kv.Rollback()
	wantResult(t, "rolled back", exec(t, kv, EncodeGet([]byte("a"))), false, nil)
	if kv.Digest() != ([32]byte{}) {
		t.Fatal("rollback left the digest changed")
	}

	kv.Begin()
	kv.Execute(EncodePut([]byte("b"), []byte("2")))
	kv.Execute(EncodeDelete([]byte("b")))
	kv.Execute(EncodePut([]byte("c"), []byte("3")))
	b := new(leveldb.Batch)
	if err := kv.Stage(b); err != nil {
		t.Fatal(err)
	}
	if err := db.LevelDB().Write(b, nil); err != nil {
		t.Fatal(err)
	}
	kv.Commit()
	if err := kvStateErr(kv, map[string][]byte{"c": []byte("3")}); err != nil {
		t.Fatal(err)
	}
	fresh, err := kv.RecomputeDigest()
	if err != nil || fresh != kv.Digest() {
		t.Fatalf("digest after committed batch %x, recomputed %x (err %v)", kv.Digest(), fresh, err)
	}
}

func FuzzKVExecute(f *testing.F) {
	f.Add(EncodePut([]byte("k"), []byte("v")))
	f.Add(EncodeGet([]byte("k")))
	f.Add(EncodeDelete([]byte("k")))
	f.Add(EncodeCAS([]byte("k"), []byte("v"), false, []byte("w")))
	f.Add(EncodeCAS([]byte("k"), nil, true, []byte("w")))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	kv := newTestKV(f)
	f.Fuzz(func(t *testing.T, op []byte) {
		res, err := DecodeResult(kv.Execute(op))
		if err != nil {
			t.Fatalf("Execute returned an undecodable result: %v", err)
		}
		if res.GetError() != "" && (res.GetOk() || len(res.GetValue()) > 0) {
			t.Fatalf("error result carries data: %+v", res)
		}
		fresh, err := kv.RecomputeDigest()
		if err != nil {
			t.Fatal(err)
		}
		if fresh != kv.Digest() {
			t.Fatalf("digest drifted from the state after op %x", op)
		}
	})
}
