package execution

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// openLimited opens a replica whose executor keeps at most maxWindows
// client windows.
func openLimited(t testing.TB, dir string, maxWindows int) *testReplica {
	t.Helper()
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatalf("NewKV: %v", err)
	}
	exe, err := NewExecutor(db, kv, slog.New(slog.DiscardHandler), WithMaxClientWindows(maxWindows))
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	return &testReplica{db: db, kv: kv, exe: exe}
}

// windowSummary is what a client window holds, comparable.
type windowSummary struct {
	high, lastSeq uint64
	entries       string // the entries' numbers and hashes, in order
}

func summarize(w *clientWindow) windowSummary {
	var b []byte
	for _, n := range slices.Sorted(maps.Keys(w.entries)) {
		h := w.entries[n].hash
		b = binary.AppendUvarint(b, n)
		b = append(b, h[:]...)
	}
	return windowSummary{high: w.high, lastSeq: w.lastSeq, entries: string(b)}
}

func windowsOf(e *Executor) map[string]windowSummary {
	out := make(map[string]windowSummary, len(e.clients))
	for id, w := range e.clients {
		out[id] = summarize(w)
	}
	return out
}

// storedWindows decodes every e/reply/ record in the database.
func storedWindows(t testing.TB, r *testReplica) map[string]windowSummary {
	t.Helper()
	out := make(map[string]windowSummary)
	iter := r.db.LevelDB().NewIterator(util.BytesPrefix([]byte(executorReplyPrefix)), nil)
	defer iter.Release()
	for iter.Next() {
		id := string(iter.Key()[len(executorReplyPrefix):])
		w, err := decodeClientWindow(id, iter.Value())
		if err != nil {
			t.Fatalf("stored window of %q: %v", id, err)
		}
		out[id] = summarize(w)
	}
	if err := iter.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkEvictState checks the executor's eviction invariants between
// Applies: the window count is within the limit (unless allowOver), the
// heap is a heap holding exactly one current ref per window and not too
// many stale ones, the digest matches a recomputation from scratch, and
// the database holds exactly the in-memory windows.
func checkEvictState(t testing.TB, name string, r *testReplica, allowOver bool) {
	t.Helper()
	e := r.exe
	if !allowOver && len(e.clients) > e.maxClientWindows {
		t.Fatalf("%s: %d windows, limit %d", name, len(e.clients), e.maxClientWindows)
	}
	for i := 1; i < len(e.evictHeap); i++ {
		if e.evictHeap[i].less(e.evictHeap[(i-1)/2]) {
			t.Fatalf("%s: heap order broken at %d", name, i)
		}
	}
	current := make(map[string]int)
	for _, ref := range e.evictHeap {
		if e.isCurrent(ref) {
			current[ref.id]++
		}
	}
	for id := range e.clients {
		if current[id] != 1 {
			t.Fatalf("%s: window %q has %d current heap refs, want 1", name, id, current[id])
		}
	}
	if len(e.evictHeap) > 2*len(e.clients)+evictHeapSlack {
		t.Fatalf("%s: heap of %d refs for %d windows", name, len(e.evictHeap), len(e.clients))
	}
	for id, w := range e.clients {
		if w.seqHash != windowSeqHash(id, w.lastSeq) || w.lastSeq > e.lastExecuted || w.touched {
			t.Fatalf("%s: window %q: stale element, lastSeq %d above %d, or still touched", name, id, w.lastSeq, e.lastExecuted)
		}
	}
	if e.cacheAcc != recomputeReplyDigest(e) {
		t.Fatalf("%s: reply-cache digest differs from a recomputation", name)
	}
	checkKeyIndex(t, name, e)
	if stored := storedWindows(t, r); !maps.Equal(stored, windowsOf(e)) {
		t.Fatalf("%s: stored windows %v differ from memory %v", name, slices.Sorted(maps.Keys(stored)), slices.Sorted(maps.Keys(windowsOf(e))))
	}
}

// lastSeqs returns the windows' client IDs with their lastSeq.
func lastSeqs(e *Executor) map[string]uint64 {
	out := make(map[string]uint64, len(e.clients))
	for id, w := range e.clients {
		out[id] = w.lastSeq
	}
	return out
}

// TestEvictionOrder: over the limit, the windows with the smallest
// (lastSeq, client ID) that the batch did not execute requests of are
// evicted, their records deleted; a batch with more clients than the limit
// keeps them all; an evicted client's request is new again.
func TestEvictionOrder(t *testing.T) {
	dir := t.TempDir()
	counts := make(map[string]int)
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := NewExecutor(db, &countingKV{KV: kv, counts: counts}, nil, WithMaxClientWindows(3))
	if err != nil {
		t.Fatal(err)
	}
	r := &testReplica{db: db, kv: kv, exe: exe}
	req := func(c string, n uint64) Request {
		return Request{ClientID: []byte(c), RequestNumber: n, Operation: uniqueOp([]byte(c), n)}
	}
	steps := []struct {
		reqs []Request
		want map[string]uint64 // windows and their lastSeq after the batch
	}{
		{[]Request{req("b", 1), req("a", 1)}, map[string]uint64{"a": 1, "b": 1}},
		{[]Request{req("c", 1)}, map[string]uint64{"a": 1, "b": 1, "c": 2}},
		// (1, a) < (1, b): a goes.
		{[]Request{req("d", 1)}, map[string]uint64{"b": 1, "c": 2, "d": 3}},
		// A duplicate does not refresh c; an empty batch evicts nothing.
		{[]Request{req("c", 1)}, map[string]uint64{"b": 1, "c": 2, "d": 3}},
		{nil, map[string]uint64{"b": 1, "c": 2, "d": 3}},
		{[]Request{req("e", 1), req("b", 2)}, map[string]uint64{"b": 6, "d": 3, "e": 6}},
		// Four clients in one batch: all other windows go, the four stay.
		{[]Request{req("i", 1), req("h", 1), req("g", 1), req("f", 1)}, map[string]uint64{"f": 7, "g": 7, "h": 7, "i": 7}},
		// a's request 1 executes again (its window was evicted); f and g,
		// the smallest IDs among lastSeq 7, go.
		{[]Request{req("a", 1)}, map[string]uint64{"a": 8, "h": 7, "i": 7}},
	}
	for i, step := range steps {
		seq := uint64(i + 1)
		apply(t, r.exe, seq, step.reqs...)
		if got := lastSeqs(r.exe); !maps.Equal(got, step.want) {
			t.Fatalf("seq %d: windows %v, want %v", seq, got, step.want)
		}
		checkEvictState(t, fmt.Sprintf("seq %d", seq), r, seq == 7)
	}
	if r.exe.ClientWindows() != 3 {
		t.Fatalf("ClientWindows = %d, want 3", r.exe.ClientWindows())
	}
	if c := counts[string(uniqueOp([]byte("a"), 1))]; c != 2 {
		t.Fatalf("a's request 1 executed %d times, want 2 (once per window)", c)
	}
	if c := counts[string(uniqueOp([]byte("c"), 1))]; c != 1 {
		t.Fatalf("c's request 1 executed %d times, want 1", c)
	}
	if st := r.exe.Status([]byte("b"), 2); st != RequestNew {
		t.Fatalf("evicted b's request 2: status %v, want new", st)
	}
	if _, ok := r.exe.CachedReply([]byte("b"), 2); ok {
		t.Fatal("evicted b's reply still cached")
	}
	digest, windows := r.exe.StateDigest(), windowsOf(r.exe)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r = openLimited(t, dir, 3)
	defer r.db.Close()
	if r.exe.StateDigest() != digest || !maps.Equal(windowsOf(r.exe), windows) {
		t.Fatal("windows or digest changed across reopen")
	}
	checkEvictState(t, "reopened", r, false)
	// The reopened executor evicts as it would have: (7, h) goes.
	apply(t, r.exe, 9, req("z", 1))
	if got, want := lastSeqs(r.exe), map[string]uint64{"a": 8, "i": 7, "z": 9}; !maps.Equal(got, want) {
		t.Fatalf("after reopen: windows %v, want %v", got, want)
	}
}

// TestEvictionLoweredLimit: an executor reopened with a lower limit keeps
// its windows until the next Apply, which evicts down to the limit.
func TestEvictionLoweredLimit(t *testing.T) {
	dir := t.TempDir()
	r := openLimited(t, dir, 10)
	for seq := uint64(1); seq <= 6; seq++ {
		apply(t, r.exe, seq, Request{ClientID: fmt.Appendf(nil, "c%d", 7-seq), RequestNumber: 1, Operation: putOp("k", "v")})
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
	r = openLimited(t, dir, 2)
	defer r.db.Close()
	if r.exe.ClientWindows() != 6 {
		t.Fatalf("reopen evicted: %d windows", r.exe.ClientWindows())
	}
	apply(t, r.exe, 7)
	if got, want := lastSeqs(r.exe), map[string]uint64{"c2": 5, "c1": 6}; !maps.Equal(got, want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	checkEvictState(t, "lowered", r, false)
}

func TestWithMaxClientWindowsRejectsZero(t *testing.T) {
	db := openStorage(t, t.TempDir())
	defer db.Close()
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExecutor(db, kv, nil, WithMaxClientWindows(0)); err == nil {
		t.Fatal("NewExecutor accepted a limit of 0")
	}
}

// evictModel is the reference eviction rule: a map of client ID to
// lastSeq, evicted by sorting.
type evictModel struct {
	max     int
	lastSeq map[string]uint64
}

func (m *evictModel) apply(seq uint64, executed []string) {
	touched := make(map[string]bool)
	for _, id := range executed {
		m.lastSeq[id] = seq
		touched[id] = true
	}
	var candidates []windowRef
	for id, s := range m.lastSeq {
		if !touched[id] {
			candidates = append(candidates, windowRef{lastSeq: s, id: id})
		}
	}
	slices.SortFunc(candidates, func(a, b windowRef) int {
		return cmp.Or(cmp.Compare(a.lastSeq, b.lastSeq), cmp.Compare(a.id, b.id))
	})
	for _, c := range candidates {
		if len(m.lastSeq) <= m.max {
			break
		}
		delete(m.lastSeq, c.id)
	}
}

// TestEvictionReplicasAgree: two executors applying the same random
// batches (skewed client activity, some batches with more clients than the
// limit, empty batches) evict the same windows, as the reference rule
// does, and keep the same digest; an executor restored midway from a
// snapshot of one of them (after running its own, different history)
// matches and keeps matching through later evictions, as does one
// reopened from its database.
func TestEvictionReplicasAgree(t *testing.T) {
	const (
		limit   = 6
		clients = 24
		batches = 400
	)
	rng := rand.New(rand.NewPCG(11, 12))
	a := openLimited(t, t.TempDir(), limit)
	defer func() { a.db.Close() }()
	dirB := t.TempDir()
	b := openLimited(t, dirB, limit)
	defer func() { b.db.Close() }()
	c := openLimited(t, t.TempDir(), limit)
	defer func() { c.db.Close() }()
	// c runs its own history first: the restore must replace its windows
	// and its eviction heap.
	for seq := uint64(1); seq <= 50; seq++ {
		apply(t, c.exe, seq, Request{ClientID: fmt.Appendf(nil, "other-%d", seq%9), RequestNumber: seq, Operation: putOp("o", "o")})
	}
	model := &evictModel{max: limit, lastSeq: make(map[string]uint64)}
	next := make(map[string]uint64)
	followers := []*testReplica{b}
	evictedAfterRestore := 0
	for seq := uint64(1); seq <= batches; seq++ {
		var reqs []Request
		var executed []string
		size := rng.IntN(5)
		if rng.IntN(10) == 0 {
			size = limit + 2 + rng.IntN(3)
		}
		for range size {
			// Skewed: low IDs are much more active.
			id := fmt.Sprintf("client-%02d", min(rng.IntN(clients), rng.IntN(clients)))
			if _, kept := model.lastSeq[id]; !kept || rng.IntN(4) > 0 {
				next[id]++ // a new number (executes)
				executed = append(executed, id)
			} // else a retransmission of the last number (cached)
			reqs = append(reqs, Request{ClientID: []byte(id), RequestNumber: next[id], Operation: putOp(id, fmt.Sprint(seq))})
		}
		prev := maps.Clone(model.lastSeq)
		model.apply(seq, executed)
		for _, r := range append([]*testReplica{a}, followers...) {
			apply(t, r.exe, seq, reqs...)
		}
		if !maps.Equal(lastSeqs(a.exe), model.lastSeq) {
			t.Fatalf("seq %d: windows %v, reference %v", seq, lastSeqs(a.exe), model.lastSeq)
		}
		for _, r := range followers {
			if r.exe.StateDigest() != a.exe.StateDigest() || !maps.Equal(windowsOf(r.exe), windowsOf(a.exe)) {
				t.Fatalf("seq %d: replicas differ", seq)
			}
		}
		if seq%25 == 0 || seq > batches-5 {
			for i, r := range append([]*testReplica{a}, followers...) {
				checkEvictState(t, fmt.Sprintf("seq %d replica %d", seq, i), r, true)
			}
		}
		if len(followers) == 2 {
			for id := range prev {
				if _, kept := model.lastSeq[id]; !kept {
					evictedAfterRestore++
				}
			}
		}
		switch seq {
		case 150:
			snap := takeSnapshot(t, a.exe)
			digest := restoreChunks(t, c, chunkAll(t, snap, 300))
			if digest != a.exe.StateDigest() || !maps.Equal(windowsOf(c.exe), windowsOf(a.exe)) {
				t.Fatal("restored replica differs")
			}
			checkEvictState(t, "restored", c, true)
			followers = append(followers, c)
		case 250:
			if err := b.db.Close(); err != nil {
				t.Fatal(err)
			}
			b = openLimited(t, dirB, limit)
			followers[0] = b
			if b.exe.StateDigest() != a.exe.StateDigest() {
				t.Fatal("reopened replica's digest differs")
			}
		}
	}
	if evictedAfterRestore < 100 {
		t.Fatalf("only %d windows evicted after the restore", evictedAfterRestore)
	}
}

// TestEvictionUndoneOnFailure: a batch that would evict and restamp
// windows but fails (at staging, or at the write) leaves the windows,
// their records, the digest and the eviction heap as they were; applied
// again successfully, it evicts as on a replica that never failed.
func TestEvictionUndoneOnFailure(t *testing.T) {
	req := func(c string, n uint64) Request {
		return Request{ClientID: []byte(c), RequestNumber: n, Operation: putOp(c, fmt.Sprint(n))}
	}
	history := [][]Request{{req("a", 1)}, {req("b", 1)}, {req("c", 1)}}
	failing := []Request{req("d", 1), req("b", 2), req("c", 1)} // evicts a, restamps b
	prepare := func(r *testReplica) {
		for i, reqs := range history {
			apply(t, r.exe, uint64(i+1), reqs...)
		}
	}
	type state struct {
		digest  [32]byte
		windows map[string]windowSummary
		heap    []windowRef
	}
	capture := func(r *testReplica) state {
		return state{r.exe.StateDigest(), windowsOf(r.exe), slices.Clone(r.exe.evictHeap)}
	}
	same := func(x, y state) bool {
		sortRefs := func(h []windowRef) []windowRef {
			return slices.SortedFunc(slices.Values(h), func(a, b windowRef) int {
				return cmp.Or(cmp.Compare(a.lastSeq, b.lastSeq), cmp.Compare(a.id, b.id))
			})
		}
		return x.digest == y.digest && maps.Equal(x.windows, y.windows) && slices.Equal(sortRefs(x.heap), sortRefs(y.heap))
	}

	t.Run("stage", func(t *testing.T) {
		m := openModelReplica(t, t.TempDir(), 0, WithMaxClientWindows(3))
		defer m.db.Close()
		r := &testReplica{db: m.db, kv: m.kv, exe: m.exe}
		prepare(r)
		before := capture(r)
		m.app.failStage = true
		if _, err := r.exe.Apply(4, failing); err == nil {
			t.Fatal("Apply with a failing Stage succeeded")
		}
		m.app.failStage = false
		if !same(capture(r), before) {
			t.Fatal("failed Apply changed the windows, digest or heap")
		}
		checkEvictState(t, "after failure", r, false)
		apply(t, r.exe, 4, failing...)
		ref := openLimited(t, t.TempDir(), 3)
		defer ref.db.Close()
		prepare(ref)
		apply(t, ref.exe, 4, failing...)
		if !same(capture(r), capture(ref)) {
			t.Fatal("retried batch differs from a replica that never failed")
		}
		if got, want := lastSeqs(r.exe), map[string]uint64{"b": 4, "c": 3, "d": 4}; !maps.Equal(got, want) {
			t.Fatalf("windows %v, want %v", got, want)
		}
		checkEvictState(t, "after retry", r, false)
	})
	t.Run("write", func(t *testing.T) {
		r := openLimited(t, t.TempDir(), 3)
		prepare(r)
		before := capture(r)
		if err := r.db.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.exe.Apply(4, failing); err == nil {
			t.Fatal("Apply on a closed database succeeded")
		}
		if !same(capture(r), before) || r.exe.LastExecuted() != 3 {
			t.Fatal("failed write changed the windows, digest or heap")
		}
		if r.exe.cacheAcc != recomputeReplyDigest(r.exe) {
			t.Fatal("reply-cache digest differs from a recomputation")
		}
		for id, w := range r.exe.clients {
			if w.touched || w.seqHash != windowSeqHash(id, w.lastSeq) {
				t.Fatalf("window %q not reverted", id)
			}
		}
	})
}

// TestWindowRecordWithoutLastSeqLoads: records written before lastSeq
// existed load with lastSeq 0, count in the digest as such, are evicted
// first (by client ID), and gain lastSeq when rewritten.
func TestWindowRecordWithoutLastSeqLoads(t *testing.T) {
	dir := t.TempDir()
	db := openStorage(t, dir)
	legacy := func(high uint64, result string) []byte {
		b := binary.AppendUvarint(nil, high)
		b = binary.AppendUvarint(b, 1)
		b = binary.AppendUvarint(b, high)
		b = binary.AppendUvarint(b, uint64(len(result)))
		return append(b, result...)
	}
	for key, value := range map[string][]byte{
		executorLastKey:                 binary.BigEndian.AppendUint64(nil, 7),
		executorReplyPrefix + "old":     legacy(3, "r3"),
		executorReplyPrefix + "zed":     legacy(9, "r9"),
		executorReplyPrefix + "another": legacy(1, "r1"),
	} {
		if err := db.LevelDB().Put([]byte(key), value, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r := openLimited(t, dir, 2)
	if got, want := lastSeqs(r.exe), map[string]uint64{"another": 0, "old": 0, "zed": 0}; !maps.Equal(got, want) {
		t.Fatalf("loaded windows %v, want %v", got, want)
	}
	if got, ok := r.exe.CachedReply([]byte("zed"), 9); !ok || string(got) != "r9" {
		t.Fatalf("legacy reply = %q, %v", got, ok)
	}
	var want adHash
	for id, n := range map[string]uint64{"old": 3, "zed": 9, "another": 1} {
		want.add(replyHash(id, n, fmt.Appendf(nil, "r%d", n)))
		want.add(windowSeqHash(id, 0))
	}
	if r.exe.cacheAcc != want {
		t.Fatal("legacy windows' digest is not entries plus lastSeq-0 elements")
	}
	checkEvictState(t, "loaded", r, true)
	// zed is rewritten with lastSeq 8; another and old (lastSeq 0, in ID
	// order) make room for new.
	apply(t, r.exe, 8, Request{ClientID: []byte("zed"), RequestNumber: 10, Operation: putOp("z", "1")})
	if got, want := lastSeqs(r.exe), map[string]uint64{"old": 0, "zed": 8}; !maps.Equal(got, want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	apply(t, r.exe, 9, Request{ClientID: []byte("new"), RequestNumber: 1, Operation: putOp("n", "1")})
	if got, want := lastSeqs(r.exe), map[string]uint64{"new": 9, "zed": 8}; !maps.Equal(got, want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	checkEvictState(t, "after evictions", r, false)
	raw, err := r.db.LevelDB().Get([]byte(executorReplyPrefix+"zed"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, []byte{8}) {
		t.Fatalf("rewritten record %x lacks the lastSeq trailer", raw)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeWindowLastSeq(t *testing.T) {
	base := (&clientWindow{high: 5, entries: map[uint64]windowEntry{5: {result: []byte("r")}}}).encode()
	for _, lastSeq := range []uint64{0, 1, 127, 128, 1 << 40, 1<<64 - 1} {
		w := &clientWindow{high: 5, lastSeq: lastSeq, entries: map[uint64]windowEntry{5: {result: []byte("r")}}}
		got, err := decodeClientWindow("c", w.encode())
		if err != nil || got.lastSeq != lastSeq || got.seqHash != windowSeqHash("c", lastSeq) {
			t.Fatalf("lastSeq %d: decoded %+v, %v", lastSeq, got, err)
		}
	}
	cases := map[string][]byte{
		"explicit zero":  append(bytes.Clone(base), 0),
		"non-minimal":    append(bytes.Clone(base), 0x85, 0x00),
		"truncated":      append(bytes.Clone(base), 0x85),
		"overflow":       append(append(bytes.Clone(base), bytes.Repeat([]byte{0xff}, 10)...), 0x01),
		"trailing bytes": append(bytes.Clone(base), 5, 0),
	}
	for name, record := range cases {
		if _, err := decodeClientWindow("c", record); !errors.Is(err, errCorruptWindow) {
			t.Errorf("%s: err = %v, want errCorruptWindow", name, err)
		}
	}
}

// TestLoadRejectsLastSeqAboveLastExecuted: a window active after the last
// executed sequence is corrupt.
func TestLoadRejectsLastSeqAboveLastExecuted(t *testing.T) {
	dir := t.TempDir()
	db := openStorage(t, dir)
	w := &clientWindow{high: 5, lastSeq: 8, entries: map[uint64]windowEntry{5: {result: []byte("r")}}}
	if err := db.LevelDB().Put([]byte(executorLastKey), binary.BigEndian.AppendUint64(nil, 7), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.LevelDB().Put([]byte(executorReplyPrefix+"c"), w.encode(), nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExecutor(db, kv, nil); !errors.Is(err, errCorruptWindow) {
		t.Fatalf("NewExecutor = %v, want errCorruptWindow", err)
	}
}

// TestEvictionHeapStaysBounded: below the limit nothing is evicted, so
// only compaction removes the stale heap refs every batch leaves; it keeps
// the heap within twice the window count (plus slack) and one current ref
// per window, and evictions afterwards follow the reference rule.
func TestEvictionHeapStaysBounded(t *testing.T) {
	const limit = 8
	r := openLimited(t, t.TempDir(), limit)
	defer r.db.Close()
	model := &evictModel{max: limit, lastSeq: make(map[string]uint64)}
	next := make(map[string]uint64)
	rng := rand.New(rand.NewPCG(5, 6))
	maxHeap := 0
	for seq := uint64(1); seq <= 600; seq++ {
		active := 5 // below the limit
		if seq > 500 {
			active = 20
		}
		var reqs []Request
		var executed []string
		for range 1 + rng.IntN(6) {
			id := fmt.Sprintf("c%02d", rng.IntN(active))
			next[id]++
			executed = append(executed, id)
			reqs = append(reqs, Request{ClientID: []byte(id), RequestNumber: next[id], Operation: putOp(id, "v")})
		}
		apply(t, r.exe, seq, reqs...)
		model.apply(seq, executed)
		maxHeap = max(maxHeap, len(r.exe.evictHeap))
		if !maps.Equal(lastSeqs(r.exe), model.lastSeq) {
			t.Fatalf("seq %d: windows %v, reference %v", seq, lastSeqs(r.exe), model.lastSeq)
		}
		if seq%10 == 0 {
			checkEvictState(t, fmt.Sprintf("seq %d", seq), r, false)
		}
	}
	if maxHeap > 2*limit+evictHeapSlack {
		t.Fatalf("heap grew to %d refs", maxHeap)
	}
}
