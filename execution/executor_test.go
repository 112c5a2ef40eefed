package execution

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand"
	"testing"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

type testReplica struct {
	db  *storage.DB
	kv  *KV
	exe *Executor
}

func openReplica(t testing.TB, dir string) *testReplica {
	t.Helper()
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatalf("NewKV: %v", err)
	}
	exe, err := NewExecutor(db, kv, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	return &testReplica{db: db, kv: kv, exe: exe}
}

func apply(t testing.TB, exe *Executor, seq uint64, reqs ...Request) []Reply {
	t.Helper()
	replies, err := exe.Apply(seq, reqs)
	if err != nil {
		t.Fatalf("Apply(%d): %v", seq, err)
	}
	return replies
}

var alice, bob = []byte("alice-public-key"), []byte("bob-public-key")

// putOp encodes a put of string key and value.
func putOp(key, value string) []byte { return EncodePut([]byte(key), []byte(value)) }

func TestExecutorExactlyOnce(t *testing.T) {
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	incr := func(from, to string) []byte {
		if from == "" {
			return EncodeCAS([]byte("n"), nil, true, []byte(to))
		}
		return EncodeCAS([]byte("n"), []byte(from), false, []byte(to))
	}

	replies := apply(t, r.exe, 1, Request{ClientID: alice, RequestNumber: 1, Operation: incr("", "1")})
	if len(replies) != 1 || replies[0].RequestNumber != 1 {
		t.Fatalf("batch 1 replies = %+v", replies)
	}
	first := replies[0].Result
	wantResult(t, "first execution swapped", mustDecode(t, first), true, nil)

	// Same request retransmitted in a later batch: not executed again (a
	// second execution would fail the CAS and change nothing, so check
	// through a non-idempotent op below), cached reply returned.
	replies = apply(t, r.exe, 2, Request{ClientID: alice, RequestNumber: 1, Operation: incr("", "1")})
	if len(replies) != 1 || !bytes.Equal(replies[0].Result, first) || replies[0].RequestNumber != 1 {
		t.Fatalf("retransmission replies = %+v, want the cached reply", replies)
	}

	// Non-idempotent: request 2 moves n from 1 to 2; re-executing it would
	// produce a failed CAS result, so equal results prove it ran once.
	replies = apply(t, r.exe, 3, Request{ClientID: alice, RequestNumber: 2, Operation: incr("1", "2")})
	second := replies[0].Result
	wantResult(t, "request 2", mustDecode(t, second), true, nil)
	replies = apply(t, r.exe, 4,
		Request{ClientID: alice, RequestNumber: 2, Operation: incr("1", "2")},  // duplicate: cached
		Request{ClientID: alice, RequestNumber: 1, Operation: putOp("n", "x")}, // lower, in the window: cached
		Request{ClientID: bob, RequestNumber: 7, Operation: EncodeGet([]byte("n"))},
		Request{ClientID: bob, RequestNumber: 7, Operation: putOp("n", "y")}, // duplicate in the same batch
	)
	if len(replies) != 4 {
		t.Fatalf("batch 4 gave %d replies, want 4: %+v", len(replies), replies)
	}
	if !bytes.Equal(replies[0].Result, second) || replies[0].RequestNumber != 2 {
		t.Fatalf("duplicate of request 2 got %+v, want its cached reply", replies[0])
	}
	if !bytes.Equal(replies[1].Result, first) || replies[1].RequestNumber != 1 {
		t.Fatalf("duplicate of request 1 got %+v, want its cached reply", replies[1])
	}
	wantResult(t, "bob reads n", mustDecode(t, replies[2].Result), true, []byte("2"))
	if !bytes.Equal(replies[3].Result, replies[2].Result) || !bytes.Equal(replies[3].ClientID, bob) {
		t.Fatalf("in-batch duplicate got %+v, want bob's cached reply", replies[3])
	}
	if err := kvStateErr(r.kv, map[string][]byte{"n": []byte("2")}); err != nil {
		t.Fatalf("state after duplicates: %v", err)
	}

	if got := r.exe.LastRequestNumber(alice); got != 2 {
		t.Fatalf("LastRequestNumber(alice) = %d, want 2", got)
	}
	if got := r.exe.LastRequestNumber([]byte("nobody")); got != 0 {
		t.Fatalf("LastRequestNumber(unknown) = %d, want 0", got)
	}
	if res, ok := r.exe.CachedReply(alice, 2); !ok || !bytes.Equal(res, second) {
		t.Fatalf("CachedReply(alice, 2) = %x, %v", res, ok)
	}
	if res, ok := r.exe.CachedReply(alice, 1); !ok || !bytes.Equal(res, first) {
		t.Fatalf("CachedReply(alice, 1) = %x, %v, want request 1's reply (still in the window)", res, ok)
	}
	if _, ok := r.exe.CachedReply(alice, 3); ok {
		t.Fatal("CachedReply returned a reply for a request that never executed")
	}
}

func mustDecode(t *testing.T, b []byte) *wire.KVResult {
	t.Helper()
	res, err := DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestExecutorStrictOrder(t *testing.T) {
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	if _, err := r.exe.Apply(2, nil); err == nil {
		t.Fatal("Apply(2) on a fresh executor succeeded, want a gap error")
	}
	if _, err := r.exe.Apply(0, nil); err == nil {
		t.Fatal("Apply(0) succeeded")
	}
	if replies := apply(t, r.exe, 1); len(replies) != 0 {
		t.Fatalf("null request produced replies: %+v", replies)
	}
	if r.exe.LastExecuted() != 1 {
		t.Fatalf("LastExecuted = %d after a null request, want 1", r.exe.LastExecuted())
	}
	if _, err := r.exe.Apply(1, []Request{{ClientID: alice, RequestNumber: 1, Operation: putOp("a", "1")}}); err == nil {
		t.Fatal("re-applying sequence 1 succeeded")
	}
	if _, err := r.exe.Apply(3, []Request{{ClientID: alice, RequestNumber: 1, Operation: putOp("a", "1")}}); err == nil {
		t.Fatal("Apply(3) after 1 succeeded")
	}
	if r.exe.LastExecuted() != 1 || r.exe.LastRequestNumber(alice) != 0 {
		t.Fatal("rejected Apply changed executor state")
	}
	if err := kvStateErr(r.kv, map[string][]byte{}); err != nil {
		t.Fatalf("rejected Apply changed application state: %v", err)
	}
}

func TestExecutorSkipsInvalidClientIDs(t *testing.T) {
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	replies := apply(t, r.exe, 1,
		Request{ClientID: nil, RequestNumber: 1, Operation: putOp("a", "1")},
		Request{ClientID: bytes.Repeat([]byte{1}, MaxClientIDSize+1), RequestNumber: 1, Operation: putOp("b", "1")},
		Request{ClientID: alice, RequestNumber: 1, Operation: putOp("c", "1")},
	)
	if len(replies) != 1 || !bytes.Equal(replies[0].ClientID, alice) {
		t.Fatalf("replies = %+v, want only alice's", replies)
	}
	if err := kvStateErr(r.kv, map[string][]byte{"c": []byte("1")}); err != nil {
		t.Fatal(err)
	}
}

func TestExecutorPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	r := openReplica(t, dir)
	rng := rand.New(rand.NewSource(3))
	for seq := uint64(1); seq <= 50; seq++ {
		var reqs []Request
		for i := range rng.Intn(5) {
			client := fmt.Appendf(nil, "client-%d", (int(seq)+i)%4)
			reqs = append(reqs, Request{ClientID: client, RequestNumber: seq, Operation: randomOp(rng)})
		}
		apply(t, r.exe, seq, reqs...)
	}
	wantDigest := r.exe.StateDigest()
	wantKV := r.kv.Digest()
	cached, ok := r.exe.CachedReply([]byte("client-2"), r.exe.LastRequestNumber([]byte("client-2")))
	if !ok {
		t.Fatal("no cached reply for client-2")
	}
	wantSnap, err := r.kv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}

	r = openReplica(t, dir)
	defer r.db.Close()
	if r.exe.LastExecuted() != 50 {
		t.Fatalf("LastExecuted after reopen = %d, want 50", r.exe.LastExecuted())
	}
	if r.kv.Digest() != wantKV {
		t.Fatal("application digest changed across reopen")
	}
	if r.exe.StateDigest() != wantDigest {
		t.Fatal("state digest changed across reopen")
	}
	got, ok := r.exe.CachedReply([]byte("client-2"), r.exe.LastRequestNumber([]byte("client-2")))
	if !ok || !bytes.Equal(got, cached) {
		t.Fatal("reply cache entry lost across reopen")
	}
	snap, err := r.kv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, wantSnap) {
		t.Fatal("application state changed across reopen")
	}
	// Execution continues at 51, and a retransmission still hits the cache.
	replies := apply(t, r.exe, 51, Request{ClientID: []byte("client-2"), RequestNumber: r.exe.LastRequestNumber([]byte("client-2")), Operation: putOp("z", "z")})
	if len(replies) != 1 || !bytes.Equal(replies[0].Result, cached) {
		t.Fatalf("retransmission after reopen got %+v, want cached reply", replies)
	}
}

func TestExecutorStateDigest(t *testing.T) {
	a, b := openReplica(t, t.TempDir()), openReplica(t, t.TempDir())
	defer a.db.Close()
	defer b.db.Close()
	if a.exe.StateDigest() != b.exe.StateDigest() {
		t.Fatal("fresh executors disagree on the state digest")
	}
	req := Request{ClientID: alice, RequestNumber: 1, Operation: putOp("k", "v")}
	apply(t, a.exe, 1, req)
	apply(t, b.exe, 1, req)
	if a.exe.StateDigest() != b.exe.StateDigest() {
		t.Fatal("executors fed the same batch disagree on the state digest")
	}
	// Same application state and cache, different sequence.
	before := a.exe.StateDigest()
	apply(t, a.exe, 2)
	if a.exe.StateDigest() == before {
		t.Fatal("state digest does not cover the last executed sequence")
	}
	apply(t, b.exe, 2)
	// Same application state, different reply cache.
	apply(t, a.exe, 3, Request{ClientID: bob, RequestNumber: 1, Operation: EncodeGet([]byte("k"))})
	apply(t, b.exe, 3, Request{ClientID: bob, RequestNumber: 2, Operation: EncodeGet([]byte("k"))})
	if a.kv.Digest() != b.kv.Digest() {
		t.Fatal("reads changed the application digest")
	}
	if a.exe.StateDigest() == b.exe.StateDigest() {
		t.Fatal("state digest does not cover the reply cache")
	}
}

func TestExecutorStorageFailureLeavesStateUnchanged(t *testing.T) {
	r := openReplica(t, t.TempDir())
	apply(t, r.exe, 1, Request{ClientID: alice, RequestNumber: 1, Operation: putOp("a", "1")})
	digest := r.exe.StateDigest()
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := r.exe.Apply(2, []Request{{ClientID: alice, RequestNumber: 2, Operation: putOp("a", "2")}})
	if err == nil {
		t.Fatal("Apply on a closed database succeeded")
	}
	if r.exe.LastExecuted() != 1 || r.exe.LastRequestNumber(alice) != 1 || r.exe.StateDigest() != digest {
		t.Fatal("failed Apply changed the executor state")
	}
	if r.kv.inBatch {
		t.Fatal("failed Apply left the KV batch open")
	}
}

func BenchmarkExecutorApply(b *testing.B) {
	r := openReplica(b, b.TempDir())
	defer r.db.Close()
	value := bytes.Repeat([]byte("v"), 64)
	client := []byte("bench-client-public-key-32-bytes")
	reqs := make([]Request, 64)
	var seq, number uint64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		for i := range reqs {
			number++
			reqs[i] = Request{ClientID: client, RequestNumber: number, Operation: EncodePut(fmt.Appendf(nil, "key-%d", number%4096), value)}
		}
		if _, err := r.exe.Apply(seq, reqs); err != nil {
			b.Fatal(err)
		}
	}
}
