package execution

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"slices"
	"testing"
)

// countingKV is a KV (still a BatchApplication) that counts the executions
// of each operation.
type countingKV struct {
	*KV
	counts map[string]int
}

func (c *countingKV) Execute(op []byte) []byte {
	c.counts[string(op)]++
	return c.KV.Execute(op)
}

// openCounting opens a replica whose executor runs a countingKV sharing
// counts (so counts survive a reopen).
func openCounting(t testing.TB, dir string, counts map[string]int) *testReplica {
	t.Helper()
	db := openStorage(t, dir)
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatalf("NewKV: %v", err)
	}
	exe, err := NewExecutor(db, &countingKV{KV: kv, counts: counts}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	return &testReplica{db: db, kv: kv, exe: exe}
}

// uniqueOp returns a put whose value names the client and request number,
// so every (client, number) has a distinct operation.
func uniqueOp(client []byte, n uint64) []byte {
	return EncodePut([]byte("k"), fmt.Appendf(nil, "%s/%d", client, n))
}

// recomputeReplyDigest recomputes the reply-cache digest from scratch.
func recomputeReplyDigest(e *Executor) adHash {
	var acc adHash
	for id, w := range e.clients {
		d := w.digest(id)
		acc.add(d.bytes())
	}
	return acc
}

func TestExecutorOutOfOrderWithinWindow(t *testing.T) {
	counts := make(map[string]int)
	r := openCounting(t, t.TempDir(), counts)
	defer r.db.Close()
	req := func(n uint64) Request {
		return Request{ClientID: alice, RequestNumber: n, Operation: uniqueOp(alice, n)}
	}

	// 5 and 6 sent concurrently, 6 ordered first: both execute once.
	replies := apply(t, r.exe, 1, req(6))
	if len(replies) != 1 || replies[0].RequestNumber != 6 {
		t.Fatalf("batch 1 replies = %+v", replies)
	}
	if got := r.exe.Status(alice, 5); got != RequestNew {
		t.Fatalf("Status(5) after 6 executed = %v, want %v", got, RequestNew)
	}
	replies = apply(t, r.exe, 2, req(5))
	if len(replies) != 1 || replies[0].RequestNumber != 5 {
		t.Fatalf("batch 2 replies = %+v, want request 5 executed", replies)
	}
	reply5 := replies[0].Result
	if got := r.exe.LastRequestNumber(alice); got != 6 {
		t.Fatalf("LastRequestNumber = %d, want 6 (the highest, not the latest)", got)
	}
	// Out of order inside one batch, and duplicates of both.
	replies = apply(t, r.exe, 3, req(8), req(7), req(5), req(8))
	if len(replies) != 4 {
		t.Fatalf("batch 3 gave %d replies, want 4: %+v", len(replies), replies)
	}
	if !bytes.Equal(replies[2].Result, reply5) || !bytes.Equal(replies[3].Result, replies[0].Result) {
		t.Fatalf("duplicates got %+v, want the cached replies", replies[2:])
	}
	for n := uint64(5); n <= 8; n++ {
		if c := counts[string(uniqueOp(alice, n))]; c != 1 {
			t.Fatalf("request %d executed %d times, want 1", n, c)
		}
		if got := r.exe.Status(alice, n); got != RequestExecuted {
			t.Fatalf("Status(%d) = %v, want %v", n, got, RequestExecuted)
		}
	}
	// A duplicate with a different operation is still not executed.
	replies = apply(t, r.exe, 4, Request{ClientID: alice, RequestNumber: 7, Operation: putOp("other", "x")})
	if len(replies) != 1 || counts[string(putOp("other", "x"))] != 0 {
		t.Fatalf("duplicate with another operation executed: %+v", replies)
	}
	if got := r.exe.Status(alice, 4); got != RequestNew {
		t.Fatalf("Status(4) = %v, want %v (never executed, inside the window)", got, RequestNew)
	}
	if got := r.exe.Status(bob, 1); got != RequestNew {
		t.Fatalf("Status of an unknown client = %v, want %v", got, RequestNew)
	}
}

func TestExecutorSkipsRequestsBelowWindow(t *testing.T) {
	counts := make(map[string]int)
	r := openCounting(t, t.TempDir(), counts)
	defer r.db.Close()
	req := func(n uint64) Request {
		return Request{ClientID: alice, RequestNumber: n, Operation: uniqueOp(alice, n)}
	}

	// Boundary: with H = ClientWindow-1 nothing is too old; with
	// H = ClientWindow, 0 is.
	apply(t, r.exe, 1, req(ClientWindow-1))
	if got := r.exe.Status(alice, 0); got != RequestNew {
		t.Fatalf("Status(0) with H=%d = %v, want %v", ClientWindow-1, got, RequestNew)
	}
	apply(t, r.exe, 2, req(ClientWindow))
	if got := r.exe.Status(alice, 0); got != RequestTooOld {
		t.Fatalf("Status(0) with H=%d = %v, want %v", ClientWindow, got, RequestTooOld)
	}
	if got := r.exe.Status(alice, 1); got != RequestNew {
		t.Fatalf("Status(1) with H=%d = %v, want %v", ClientWindow, got, RequestNew)
	}

	// Jump to 200 in a batch that also holds lower numbers: 2 (before the
	// jump) executes; 136 = 200-ClientWindow (after it) is too old and
	// skipped without a reply; 137 executes.
	const high = 200
	replies := apply(t, r.exe, 3, req(2), req(high), req(high-ClientWindow), req(high-ClientWindow+1))
	if len(replies) != 3 || replies[0].RequestNumber != 2 || replies[1].RequestNumber != high || replies[2].RequestNumber != high-ClientWindow+1 {
		t.Fatalf("batch 3 replies = %+v, want 2, %d and %d", replies, high, high-ClientWindow+1)
	}
	if counts[string(uniqueOp(alice, high-ClientWindow))] != 0 {
		t.Fatal("too old request executed")
	}
	// The earlier entries fell out of the window: evicted, no cached reply,
	// and a retransmission is skipped.
	for _, n := range []uint64{0, 2, ClientWindow - 1, ClientWindow, high - ClientWindow} {
		if got := r.exe.Status(alice, n); got != RequestTooOld {
			t.Fatalf("Status(%d) = %v, want %v", n, got, RequestTooOld)
		}
		if _, ok := r.exe.CachedReply(alice, n); ok {
			t.Fatalf("CachedReply(%d) still present below the window", n)
		}
	}
	if replies := apply(t, r.exe, 4, req(ClientWindow), req(2)); len(replies) != 0 {
		t.Fatalf("requests below the window produced replies: %+v", replies)
	}
	if counts[string(uniqueOp(alice, ClientWindow))] != 1 || counts[string(uniqueOp(alice, 2))] != 1 {
		t.Fatal("request below the window executed again")
	}
	if got := len(r.exe.clients[string(alice)].entries); got != 2 {
		t.Fatalf("window holds %d entries, want 2 (%d and %d)", got, high, high-ClientWindow+1)
	}
	if r.exe.cacheAcc != recomputeReplyDigest(r.exe) {
		t.Fatal("reply-cache digest differs from a recomputation after eviction")
	}
}

func TestExecutorWindowBound(t *testing.T) {
	r := openReplica(t, t.TempDir())
	defer r.db.Close()
	rng := rand.New(rand.NewSource(7))
	// Every number up to 4*ClientWindow, in shuffled chunks of 16.
	numbers := make([]uint64, 4*ClientWindow)
	for i := range numbers {
		numbers[i] = uint64(i + 1)
	}
	for seq := uint64(1); len(numbers) > 0; seq++ {
		chunk := numbers[:min(16, len(numbers))]
		numbers = numbers[len(chunk):]
		rng.Shuffle(len(chunk), func(i, j int) { chunk[i], chunk[j] = chunk[j], chunk[i] })
		var reqs []Request
		for _, n := range chunk {
			reqs = append(reqs, Request{ClientID: alice, RequestNumber: n, Operation: randomOp(rng)})
		}
		apply(t, r.exe, seq, reqs...)
		if got := len(r.exe.clients[string(alice)].entries); got > ClientWindow {
			t.Fatalf("after batch %d the window holds %d entries, more than %d", seq, got, ClientWindow)
		}
	}
	high := uint64(4 * ClientWindow)
	if got := len(r.exe.clients[string(alice)].entries); got != ClientWindow {
		t.Fatalf("full window holds %d entries, want %d", got, ClientWindow)
	}
	if _, ok := r.exe.CachedReply(alice, high-ClientWindow); ok {
		t.Fatal("entry at H-ClientWindow still cached")
	}
	if _, ok := r.exe.CachedReply(alice, high-ClientWindow+1); !ok {
		t.Fatal("entry at H-ClientWindow+1 not cached")
	}
	// The persisted record is bounded too.
	value, err := r.db.LevelDB().Get([]byte(executorReplyPrefix+string(alice)), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := decodeClientWindow(string(alice), value)
	if err != nil {
		t.Fatal(err)
	}
	if w.high != high || len(w.entries) != ClientWindow {
		t.Fatalf("persisted window has H=%d and %d entries, want %d and %d", w.high, len(w.entries), high, ClientWindow)
	}
}

func TestExecutorWindowPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	counts := make(map[string]int)
	r := openCounting(t, dir, counts)
	req := func(c []byte, n uint64) Request {
		return Request{ClientID: c, RequestNumber: n, Operation: uniqueOp(c, n)}
	}
	// Alice has gaps in her window (10, 12 and 14 executed, 11 and 13 not);
	// bob has entries evicted.
	apply(t, r.exe, 1, req(alice, 14), req(alice, 10), req(bob, 1), req(bob, 2))
	apply(t, r.exe, 2, req(alice, 12), req(bob, 3+ClientWindow))
	type snapshot struct {
		status [2][]RequestStatus
		high   [2]uint64
		digest [32]byte
	}
	take := func(e *Executor) snapshot {
		var s snapshot
		for i, c := range [][]byte{alice, bob} {
			s.high[i] = e.LastRequestNumber(c)
			for n := range uint64(2*ClientWindow + 2) {
				s.status[i] = append(s.status[i], e.Status(c, n))
			}
		}
		s.digest = e.StateDigest()
		return s
	}
	before := take(r.exe)
	cached, _ := r.exe.CachedReply(alice, 12)
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}

	r = openCounting(t, dir, counts)
	defer r.db.Close()
	after := take(r.exe)
	if !slices.Equal(before.status[0], after.status[0]) || !slices.Equal(before.status[1], after.status[1]) || before.high != after.high {
		t.Fatalf("window state changed across reopen: %+v vs %+v", before, after)
	}
	if before.digest != after.digest {
		t.Fatal("state digest changed across reopen")
	}
	if r.exe.cacheAcc != recomputeReplyDigest(r.exe) {
		t.Fatal("reloaded reply-cache digest differs from a recomputation")
	}
	if got, ok := r.exe.CachedReply(alice, 12); !ok || !bytes.Equal(got, cached) {
		t.Fatal("cached reply lost across reopen")
	}
	// The gaps still execute once, the executed numbers do not, bob's
	// evicted numbers stay skipped.
	replies := apply(t, r.exe, 3, req(alice, 13), req(alice, 12), req(alice, 11), req(bob, 2))
	if len(replies) != 3 || !bytes.Equal(replies[1].Result, cached) {
		t.Fatalf("replies after reopen = %+v", replies)
	}
	for n := uint64(10); n <= 14; n++ {
		if c := counts[string(uniqueOp(alice, n))]; c != 1 {
			t.Fatalf("alice's request %d executed %d times, want 1", n, c)
		}
	}
	if c := counts[string(uniqueOp(bob, 2))]; c != 1 {
		t.Fatalf("bob's request 2 executed %d times, want 1", c)
	}
}

func TestExecutorRejectsCorruptWindow(t *testing.T) {
	valid := &clientWindow{high: 70, entries: map[uint64]windowEntry{
		7:  {result: []byte("a")},
		70: {result: []byte("bc")},
	}}
	good := valid.encode()
	if _, err := decodeClientWindow("c", good); err != nil {
		t.Fatalf("decoding a valid record: %v", err)
	}
	encode := func(high uint64, entries ...uint64) []byte {
		w := &clientWindow{high: high, entries: make(map[uint64]windowEntry)}
		for _, n := range entries {
			w.entries[n] = windowEntry{result: []byte("r")}
		}
		return w.encode()
	}
	tooMany := make([]uint64, ClientWindow+1)
	for i := range tooMany {
		tooMany[i] = uint64(1000 + i)
	}
	cases := map[string][]byte{
		"empty":            nil,
		"truncated":        good[:len(good)-1],
		"trailing bytes":   append(bytes.Clone(good), 0),
		"no entries":       encode(5),
		"H not executed":   encode(70, 7, 69),
		"entry above H":    encode(70, 7, 71),
		"entry too old":    encode(70, 6, 70),
		"too many entries": encode(1000+ClientWindow, tooMany...),
		"unsorted":         {70, 2, 70, 1, 'r', 7, 1, 'r'},
	}
	for name, record := range cases {
		if _, err := decodeClientWindow("c", record); !errors.Is(err, errCorruptWindow) {
			t.Errorf("%s: err = %v, want errCorruptWindow", name, err)
		}
	}

	// NewExecutor refuses to start on a corrupt record.
	dir := t.TempDir()
	db := openStorage(t, dir)
	if err := db.LevelDB().Put([]byte(executorReplyPrefix+"alice"), cases["truncated"], nil); err != nil {
		t.Fatal(err)
	}
	kv, err := NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExecutor(db, kv, nil); !errors.Is(err, errCorruptWindow) {
		t.Fatalf("NewExecutor on a corrupt record: err = %v, want errCorruptWindow", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
