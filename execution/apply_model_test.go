package execution

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// flakyKV is a KV whose Stage fails on demand, to make Executor.Apply
// fail after executing the whole batch.
type flakyKV struct {
	*KV
	failStage bool
}

func (f *flakyKV) Stage(b Batch) error {
	if f.failStage {
		return errors.New("injected stage failure")
	}
	return f.KV.Stage(b)
}

// modelReplica is a replica driven through a flakyKV.
type modelReplica struct {
	db  *storage.DB
	kv  *KV
	app *flakyKV
	exe *Executor
}

func openModelReplica(t *testing.T, dir string, cacheEntries int, opts ...ExecutorOption) *modelReplica {
	t.Helper()
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	if cacheEntries > 0 {
		kv.cache.maxEntries = cacheEntries
	}
	app := &flakyKV{KV: kv}
	exe, err := NewExecutor(db, app, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &modelReplica{db: db, kv: kv, app: app, exe: exe}
}

// kvModel is the reference: a plain map and the results of executed
// requests, per client. With maxWindows > 0 it also applies the window
// eviction rule: results (and lastSeq) hold the clients whose window is
// kept, and a retransmission of an evicted client's request executes
// again.
type kvModel struct {
	state   map[string][]byte
	results map[string]map[uint64][]byte
	next    map[string]uint64
	lastSeq map[string]uint64 // the last batch that executed a request

	clients    int // client IDs are client-0 .. client-(clients-1)
	maxWindows int // 0: the executor's default, never reached
}

func newKVModel(clients, maxWindows int) *kvModel {
	return &kvModel{state: map[string][]byte{}, results: map[string]map[uint64][]byte{}, next: map[string]uint64{},
		lastSeq: map[string]uint64{}, clients: clients, maxWindows: maxWindows}
}

// protoResult encodes a result with the protobuf library (independently
// of kvResult.encode).
func protoResult(ok bool, value []byte) []byte {
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&wire.KVResult{Ok: ok, Value: value})
	if err != nil {
		panic(err)
	}
	return out
}

// apply executes op on a copy-on-write view of the state (the caller
// commits it) and returns the expected result.
func (m *kvModel) execute(state map[string][]byte, op *wire.KVOperation) []byte {
	switch o := op.Op.(type) {
	case *wire.KVOperation_Put:
		state[string(o.Put.Key)] = bytes.Clone(o.Put.Value)
		return protoResult(true, nil)
	case *wire.KVOperation_Get:
		v, ok := state[string(o.Get.Key)]
		return protoResult(ok, v)
	case *wire.KVOperation_Delete:
		delete(state, string(o.Delete.Key))
		return protoResult(true, nil)
	case *wire.KVOperation_Cas:
		cur, found := state[string(o.Cas.Key)]
		if (o.Cas.OldAbsent && !found) || (!o.Cas.OldAbsent && found && bytes.Equal(cur, o.Cas.OldValue)) {
			state[string(o.Cas.Key)] = bytes.Clone(o.Cas.NewValue)
			return protoResult(true, nil)
		}
		return protoResult(false, cur)
	}
	panic("unknown operation")
}

// randomModelOp returns a random operation over 48 keys, some with values
// too large for the read cache, some in non-canonical encodings.
func randomModelOp(rng *rand.Rand, state map[string][]byte) []byte {
	key := fmt.Appendf(nil, "key-%02d", rng.IntN(48))
	var value []byte
	switch rng.IntN(10) {
	case 0:
		value = nil
	case 1:
		value = bytes.Repeat([]byte{byte('A' + rng.IntN(26))}, kvCacheMaxValue+1+rng.IntN(3))
	default:
		value = fmt.Appendf(nil, "v%d", rng.IntN(1000))
	}
	switch r := rng.IntN(20); {
	case r < 7:
		return EncodePut(key, value)
	case r < 8:
		// A put with its fields reversed: valid protobuf, decoded by the
		// proto.Unmarshal fallback.
		var inner []byte
		inner = protowire.AppendTag(inner, 2, protowire.BytesType)
		inner = protowire.AppendBytes(inner, value)
		inner = protowire.AppendTag(inner, 1, protowire.BytesType)
		inner = protowire.AppendBytes(inner, key)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), inner)
	case r < 11:
		return EncodeGet(key)
	case r < 14:
		return EncodeDelete(key)
	case r < 16:
		cur, found := state[string(key)]
		return EncodeCAS(key, cur, !found, value)
	case r < 18:
		return EncodeCAS(key, nil, true, value)
	default:
		return EncodeCAS(key, fmt.Appendf(nil, "v%d", rng.IntN(1000)), false, value)
	}
}

// randomBatch returns the batch at seq: requests of m.clients clients
// with increasing numbers and some retransmissions of recent ones, and the
// expected replies, computed on a copy of the model with the state
// replaced by state (the caller adopts the returned model only if the
// batch is applied).
func (m *kvModel) randomBatch(rng *rand.Rand, state map[string][]byte, seq uint64) (reqs []Request, want []Reply, nm *kvModel) {
	nm = newKVModel(m.clients, m.maxWindows)
	nm.state = state
	for c, rs := range m.results {
		nm.results[c] = maps.Clone(rs)
	}
	maps.Copy(nm.next, m.next)
	maps.Copy(nm.lastSeq, m.lastSeq)
	results, next := nm.results, nm.next
	touched := make(map[string]bool)
	execute := func(client string, n uint64, op []byte) []byte {
		var decoded wire.KVOperation
		if err := proto.Unmarshal(op, &decoded); err != nil {
			panic(err)
		}
		result := m.execute(state, &decoded)
		if results[client] == nil {
			results[client] = make(map[uint64][]byte)
		}
		results[client][n] = result
		nm.lastSeq[client] = seq
		touched[client] = true
		return result
	}
	for range 1 + rng.IntN(40) {
		client := fmt.Sprintf("client-%d", rng.IntN(m.clients))
		if next[client] > 1 && rng.IntN(8) == 0 {
			// Retransmission of one of the last 8 numbers: in the window,
			// unless the window was evicted since.
			n := next[client] - 1 - uint64(rng.IntN(int(min(next[client]-1, 8))))
			op := EncodeGet([]byte("ignored"))
			result, ok := results[client][n]
			if !ok {
				result = execute(client, n, op)
			}
			reqs = append(reqs, Request{ClientID: []byte(client), RequestNumber: n, Operation: op})
			want = append(want, Reply{ClientID: []byte(client), RequestNumber: n, Result: result})
			continue
		}
		if next[client] == 0 {
			next[client] = 1
		}
		n := next[client]
		next[client]++
		op := randomModelOp(rng, state)
		result := execute(client, n, op)
		reqs = append(reqs, Request{ClientID: []byte(client), RequestNumber: n, Operation: op})
		want = append(want, Reply{ClientID: []byte(client), RequestNumber: n, Result: result})
	}
	if m.maxWindows > 0 {
		// Evict by sorting, independently of the executor's heap.
		var idle []string
		for c := range results {
			if !touched[c] {
				idle = append(idle, c)
			}
		}
		slices.SortFunc(idle, func(a, b string) int {
			return cmp.Or(cmp.Compare(nm.lastSeq[a], nm.lastSeq[b]), strings.Compare(a, b))
		})
		for _, c := range idle {
			if len(results) <= m.maxWindows {
				break
			}
			delete(results, c)
			delete(nm.lastSeq, c)
		}
	}
	return reqs, want, nm
}

// checkReplica checks r's state after a batch against the model and
// against digests recomputed from scratch.
func checkReplica(t *testing.T, name string, r *modelReplica, seq uint64, state map[string][]byte) {
	t.Helper()
	if r.exe.LastExecuted() != seq {
		t.Fatalf("%s seq %d: LastExecuted %d", name, seq, r.exe.LastExecuted())
	}
	fresh, err := r.kv.RecomputeDigest()
	if err != nil {
		t.Fatal(err)
	}
	if fresh != r.kv.Digest() {
		t.Fatalf("%s seq %d: KV digest %x, recomputed %x", name, seq, r.kv.Digest(), fresh)
	}
	h := sha256.New()
	h.Write([]byte(stateDigestDomain))
	h.Write(fresh[:])
	replyAcc := recomputeReplyDigest(r.exe)
	reply := replyAcc.bytes()
	h.Write(reply[:])
	h.Write(binary.AppendUvarint(nil, seq))
	if want := [32]byte(h.Sum(nil)); r.exe.StateDigest() != want {
		t.Fatalf("%s seq %d: StateDigest %x, recomputed from scratch %x", name, seq, r.exe.StateDigest(), want)
	}
	if err := kvStateErr(r.kv, state); err != nil {
		t.Fatalf("%s seq %d: %v", name, seq, err)
	}
}

func checkReplies(t *testing.T, name string, seq uint64, got, want []Reply) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s seq %d: %d replies, want %d", name, seq, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].ClientID, want[i].ClientID) || got[i].RequestNumber != want[i].RequestNumber || !bytes.Equal(got[i].Result, want[i].Result) || got[i].Result == nil {
			t.Fatalf("%s seq %d reply %d: got %s/%d %x, want %s/%d %x", name, seq, i,
				got[i].ClientID, got[i].RequestNumber, got[i].Result, want[i].ClientID, want[i].RequestNumber, want[i].Result)
		}
	}
}

// TestApplyMatchesModel runs a seeded sequence of batches (puts, gets,
// deletes, CAS, retransmissions; values too large for the read cache;
// non-canonical encodings) through an executor and checks after every
// batch the replies and the state against a plain map, and the digests
// against their from-scratch recomputation. Midway it fails batches (the
// executor rolls them back after executing them), reopens the replica
// (cold cache), and restores a second replica, whose cache holds a
// conflicting state, from the first one's snapshot; the second then
// follows in lockstep. It runs with the default read cache and with a
// tiny one (constant eviction).
//
// The windows=3 variant runs 8 clients with at most 3 client windows, so
// most batches evict, and checks the kept windows and their lastSeq
// against the model's eviction rule too.
func TestApplyMatchesModel(t *testing.T) {
	for _, v := range []struct{ cacheEntries, clients, maxWindows int }{{0, 4, 0}, {5, 4, 0}, {0, 8, 3}} {
		name := fmt.Sprintf("cache=%d", v.cacheEntries)
		if v.maxWindows > 0 {
			name += fmt.Sprintf(",windows=%d", v.maxWindows)
		}
		t.Run(name, func(t *testing.T) {
			runApplyModel(t, v.cacheEntries, v.clients, v.maxWindows)
		})
	}
}

func runApplyModel(t *testing.T, cacheEntries, clients, maxWindows int) {
	rng := rand.New(rand.NewPCG(7, uint64(cacheEntries+100*maxWindows)))
	var opts []ExecutorOption
	if maxWindows > 0 {
		opts = append(opts, WithMaxClientWindows(maxWindows))
	}
	dirA := t.TempDir()
	a := openModelReplica(t, dirA, cacheEntries, opts...)
	defer func() { a.db.Close() }()
	m := newKVModel(clients, maxWindows)

	// b executes a different history first, so its cache holds values
	// that the restore must not let through.
	b := openModelReplica(t, t.TempDir(), cacheEntries, opts...)
	defer func() { b.db.Close() }()
	other := newKVModel(clients, maxWindows)
	for seq := uint64(1); seq <= 30; seq++ {
		reqs, want, next := other.randomBatch(rng, maps2Clone(other.state), seq)
		checkReplies(t, "b-own", seq, apply(t, b.exe, seq, reqs...), want)
		other = next
	}
	checkWindows := func(name string, r *modelReplica, seq uint64) {
		t.Helper()
		if got := lastSeqs(r.exe); maxWindows > 0 && !maps.Equal(got, m.lastSeq) {
			t.Fatalf("%s seq %d: windows %v, model %v", name, seq, got, m.lastSeq)
		}
	}
	bFollows := false
	evictions := 0

	const batches = 150
	for seq := uint64(1); seq <= batches; seq++ {
		// Every 7th batch first fails at Stage, after executing: nothing
		// of it may remain, in the KV (overlay, digest, cache) or in the
		// client windows.
		if seq%7 == 3 {
			reqs, _, _ := m.randomBatch(rng, maps2Clone(m.state), seq)
			before := a.exe.StateDigest()
			a.app.failStage = true
			if _, err := a.exe.Apply(seq, reqs); err == nil {
				t.Fatalf("seq %d: Apply with a failing Stage succeeded", seq)
			}
			a.app.failStage = false
			if a.exe.StateDigest() != before || a.kv.inBatch {
				t.Fatalf("seq %d: failed Apply changed the state", seq)
			}
			checkReplica(t, "a-after-failure", a, seq-1, m.state)
			checkWindows("a-after-failure", a, seq-1)
		}
		reqs, want, next := m.randomBatch(rng, maps2Clone(m.state), seq)
		checkReplies(t, "a", seq, apply(t, a.exe, seq, reqs...), want)
		for c := range m.results {
			if next.results[c] == nil {
				evictions++
			}
		}
		m = next
		checkReplica(t, "a", a, seq, m.state)
		checkWindows("a", a, seq)
		if bFollows {
			checkReplies(t, "b", seq, apply(t, b.exe, seq, reqs...), want)
			checkReplica(t, "b", b, seq, m.state)
			checkWindows("b", b, seq)
			if a.exe.StateDigest() != b.exe.StateDigest() {
				t.Fatalf("seq %d: replicas' digests differ", seq)
			}
		}

		switch seq {
		case 50:
			// Reopen: the cache starts cold.
			if err := a.db.Close(); err != nil {
				t.Fatal(err)
			}
			a = openModelReplica(t, dirA, cacheEntries, opts...)
			checkReplica(t, "a-reopened", a, seq, m.state)
			checkWindows("a-reopened", a, seq)
		case 80:
			snap := takeSnapshot(t, a.exe)
			digest := restoreChunks(t, &testReplica{db: b.db, kv: b.kv, exe: b.exe}, chunkAll(t, snap, 200))
			if digest != a.exe.StateDigest() {
				t.Fatalf("restored digest %x, want %x", digest, a.exe.StateDigest())
			}
			checkReplica(t, "b-restored", b, seq, m.state)
			checkWindows("b-restored", b, seq)
			bFollows = true
		}
	}
	if maxWindows > 0 && evictions < batches {
		t.Fatalf("only %d window evictions in %d batches", evictions, batches)
	}
}

func maps2Clone(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestKVCacheFollowsRollbackRestoreReload: a standalone KV's read cache
// never serves a rolled-back write, a value replaced by Restore, or one
// rewritten in the database before Reload.
func TestKVCacheFollowsRollbackRestoreReload(t *testing.T) {
	db := openStorage(t, t.TempDir())
	defer db.Close()
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	k := []byte("k")
	exec(t, kv, EncodePut(k, []byte("1")))
	wantResult(t, "cached", exec(t, kv, EncodeGet(k)), true, []byte("1"))
	wantResult(t, "absent cached", exec(t, kv, EncodeGet([]byte("fresh"))), false, nil)

	kv.Begin()
	kv.Execute(EncodePut(k, []byte("2")))
	kv.Execute(EncodePut([]byte("fresh"), []byte("x")))
	kv.Rollback()
	wantResult(t, "after rollback", exec(t, kv, EncodeGet(k)), true, []byte("1"))
	wantResult(t, "absent after rollback", exec(t, kv, EncodeGet([]byte("fresh"))), false, nil)

	// Restore a snapshot of another KV where k is 9 and fresh exists.
	src := newTestKV(t)
	exec(t, src, EncodePut(k, []byte("9")))
	exec(t, src, EncodePut([]byte("fresh"), []byte("y")))
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Restore(snap); err != nil {
		t.Fatal(err)
	}
	wantResult(t, "after restore", exec(t, kv, EncodeGet(k)), true, []byte("9"))
	wantResult(t, "fresh after restore", exec(t, kv, EncodeGet([]byte("fresh"))), true, []byte("y"))

	// Rewrite k in the database behind the KV's back, as state transfer
	// does, then Reload.
	if err := db.LevelDB().Put(dataKey(k), []byte("direct"), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.LevelDB().Delete(dataKey([]byte("fresh")), nil); err != nil {
		t.Fatal(err)
	}
	if err := kv.Reload(); err != nil {
		t.Fatal(err)
	}
	wantResult(t, "after reload", exec(t, kv, EncodeGet(k)), true, []byte("direct"))
	wantResult(t, "deleted before reload", exec(t, kv, EncodeGet([]byte("fresh"))), false, nil)
	exec(t, kv, EncodePut(k, []byte("3")))
	fresh, err := kv.RecomputeDigest()
	if err != nil || fresh != kv.Digest() {
		t.Fatalf("digest %x, recomputed %x (err %v)", kv.Digest(), fresh, err)
	}
}

// TestKVCacheBounds: the cache stays within its bounds and evicts the least
// recently used entry; values too large are not cached.
func TestKVCacheBounds(t *testing.T) {
	c := newKVCache()
	c.maxEntries = 3
	for i := range 5 {
		c.store(fmt.Sprintf("k%d", i), []byte("v"), true, [32]byte{}, false)
		if i == 2 && c.lookup([]byte("k0")) == nil { // k0 becomes most recent
			t.Fatal("k0 missing")
		}
	}
	if len(c.entries) != 3 || c.lookup([]byte("k1")) != nil || c.lookup([]byte("k2")) != nil || c.lookup([]byte("k0")) == nil {
		t.Fatalf("after 5 stores into 3 entries: %d entries, want k0, k3, k4", len(c.entries))
	}
	c.store("k3", make([]byte, kvCacheMaxValue+1), true, [32]byte{}, false)
	if c.lookup([]byte("k3")) != nil {
		t.Fatal("a value over kvCacheMaxValue was cached")
	}
	c.maxBytes = 2 * (kvCacheEntryOverhead + 3)
	c.store("k5", []byte("v"), true, [32]byte{}, false)
	if len(c.entries) != 2 || c.bytes > c.maxBytes {
		t.Fatalf("%d entries of %d bytes over the %d-byte bound", len(c.entries), c.bytes, c.maxBytes)
	}
	n := 0
	for e := c.sentinel.next; e != &c.sentinel; e = e.next {
		n++
	}
	if n != len(c.entries) {
		t.Fatalf("LRU list has %d entries, map %d", n, len(c.entries))
	}
}
