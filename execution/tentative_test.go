package execution

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// tentativeFixture is two executors fed the same two batches: tent stages
// the third tentatively, plain applies it (or not).
func tentativeFixture(t *testing.T) (tent, plain *testReplica, third []Request) {
	t.Helper()
	tent, plain = openReplica(t, t.TempDir()), openReplica(t, t.TempDir())
	t.Cleanup(func() { tent.db.Close(); plain.db.Close() })
	for _, r := range []*testReplica{tent, plain} {
		apply(t, r.exe, 1, Request{ClientID: alice, RequestNumber: 1, Operation: putOp("a", "1")})
		apply(t, r.exe, 2, Request{ClientID: bob, RequestNumber: 1, Operation: putOp("b", "1")})
	}
	third = []Request{
		{ClientID: alice, RequestNumber: 2, Operation: putOp("a", "2")},
		{ClientID: alice, RequestNumber: 3, Operation: EncodeGet([]byte("a"))},
	}
	return tent, plain, third
}

func sameReplies(a, b []Reply) bool {
	return slices.EqualFunc(a, b, func(x, y Reply) bool {
		return bytes.Equal(x.ClientID, y.ClientID) && x.RequestNumber == y.RequestNumber && bytes.Equal(x.Result, y.Result)
	})
}

// A batch staged tentatively and then committed leaves the state Apply
// leaves, and its replies are Apply's.
func TestTentativeCommitEqualsApply(t *testing.T) {
	tent, plain, third := tentativeFixture(t)
	staged, err := tent.exe.ApplyTentative(3, third)
	if err != nil {
		t.Fatal(err)
	}
	if seq, ok := tent.exe.TentativeSequence(); !ok || seq != 3 {
		t.Fatalf("TentativeSequence = %d, %v", seq, ok)
	}
	want := apply(t, plain.exe, 3, third...)
	if !sameReplies(staged, want) {
		t.Fatalf("tentative replies %+v, Apply's %+v", staged, want)
	}
	committed, err := tent.exe.CommitTentative(3)
	if err != nil {
		t.Fatal(err)
	}
	if !sameReplies(committed, want) {
		t.Fatalf("committed replies %+v, Apply's %+v", committed, want)
	}
	if tent.exe.LastExecuted() != 3 || tent.exe.StateDigest() != plain.exe.StateDigest() {
		t.Fatal("a committed tentative batch leaves another state than Apply")
	}
	if got, _ := tent.exe.CachedReply(alice, 3); !bytes.Equal(got, want[1].Result) {
		t.Fatalf("cached reply %q, want %q", got, want[1].Result)
	}
	if _, err := tent.exe.CommitTentative(3); !errors.Is(err, ErrNoTentative) {
		t.Fatalf("second CommitTentative: %v", err)
	}
	// The next batch applies on top, as on the other executor.
	next := Request{ClientID: bob, RequestNumber: 2, Operation: putOp("b", "2")}
	apply(t, tent.exe, 4, next)
	apply(t, plain.exe, 4, next)
	if tent.exe.StateDigest() != plain.exe.StateDigest() {
		t.Fatal("states differ after the next batch")
	}
}

// While a batch is staged every reader sees the executed state, and a
// discarded batch leaves no trace: a different batch then applies at its
// sequence as on an executor that never staged it.
func TestTentativeDiscardLeavesNoTrace(t *testing.T) {
	tent, plain, third := tentativeFixture(t)
	digest := tent.exe.StateDigest()
	if _, err := tent.exe.ApplyTentative(3, third); err != nil {
		t.Fatal(err)
	}
	if tent.exe.StateDigest() != digest || tent.exe.LastExecuted() != 2 {
		t.Fatal("a staged batch shows in StateDigest or LastExecuted")
	}
	// Questions about clients are answered on the executed state, and
	// keep the staged batch: bob's window is not the batch's, alice's is
	// (request 2 is new, 3 is not cached, 1 is).
	if tent.exe.LastRequestNumber(bob) != 1 || tent.exe.LastRequestNumber(alice) != 1 {
		t.Fatal("LastRequestNumber shows the staged batch")
	}
	if tent.exe.Status(alice, 2) != RequestNew || tent.exe.Status(alice, 1) != RequestExecuted {
		t.Fatal("Status shows the staged batch")
	}
	if _, ok := tent.exe.CachedReply(alice, 3); ok {
		t.Fatal("a tentative result reached the reply cache")
	}
	if _, ok := tent.exe.CachedReply(alice, 1); !ok {
		t.Fatal("an executed result is missing from the reply cache")
	}
	if _, ok := tent.exe.TentativeSequence(); !ok {
		t.Fatal("a question about a client discarded the staged batch")
	}
	// A read discards it.
	got, err := tent.exe.Read(alice, EncodeGet([]byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	if r := mustDecode(t, got); !bytes.Equal(r.Value, []byte("1")) {
		t.Fatalf("read after discard: %q, want the executed value 1", r.Value)
	}
	if _, ok := tent.exe.TentativeSequence(); ok {
		t.Fatal("the staged batch survived a read")
	}
	other := Request{ClientID: bob, RequestNumber: 2, Operation: putOp("a", "9")}
	apply(t, tent.exe, 3, other)
	apply(t, plain.exe, 3, other)
	if tent.exe.StateDigest() != plain.exe.StateDigest() {
		t.Fatal("a discarded tentative batch left a trace in the state")
	}
	if _, err := tent.exe.CommitTentative(3); !errors.Is(err, ErrNoTentative) {
		t.Fatalf("CommitTentative after discard: %v", err)
	}
}

// Reads, snapshots and Apply discard a staged batch; the state is the
// executed one.
func TestTentativeDiscardedByOtherCalls(t *testing.T) {
	for name, call := range map[string]func(*Executor) error{
		"Read": func(e *Executor) error { _, err := e.Read(bob, EncodeGet([]byte("a"))); return err },
		"TakeSnapshot": func(e *Executor) error {
			s, err := e.TakeSnapshot()
			if err == nil {
				s.Release()
			}
			return err
		},
		"DiscardTentative": func(e *Executor) error { e.DiscardTentative(); return nil },
	} {
		t.Run(name, func(t *testing.T) {
			tent, _, third := tentativeFixture(t)
			digest := tent.exe.StateDigest()
			if _, err := tent.exe.ApplyTentative(3, third); err != nil {
				t.Fatal(err)
			}
			if err := call(tent.exe); err != nil {
				t.Fatal(err)
			}
			if _, ok := tent.exe.TentativeSequence(); ok {
				t.Fatal("the staged batch survived")
			}
			if tent.exe.StateDigest() != digest || tent.kv.inBatch {
				t.Fatal("the discarded batch changed the state or left the KV batch open")
			}
		})
	}
}

func TestTentativeRefusesConfigChanges(t *testing.T) {
	tent, _, _ := tentativeFixture(t)
	_, err := tent.exe.ApplyTentative(3, []Request{{ClientID: alice, RequestNumber: 2, ConfigChange: []byte{1}}})
	if !errors.Is(err, ErrTentativeUnsupported) {
		t.Fatalf("ApplyTentative of a configuration change: %v", err)
	}
	if _, err := tent.exe.ApplyTentative(4, nil); err == nil {
		t.Fatal("ApplyTentative out of order succeeded")
	}
}

// While a random batch is staged, Status, LastRequestNumber and
// CachedReply answer for every client and request number what an
// executor that never saw the batch answers (the staged batch changes
// the windows in place; the answers come from its undo log).
func TestTentativeAnswersFromTheExecutedState(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	tent, plain := openReplica(t, t.TempDir()), openReplica(t, t.TempDir())
	t.Cleanup(func() { tent.db.Close(); plain.db.Close() })
	clients := [][]byte{alice, bob, []byte("carol-public-key")}
	next := make([]uint64, len(clients))
	batch := func() []Request {
		var reqs []Request
		for range 1 + rng.IntN(6) {
			i := rng.IntN(len(clients))
			n := next[i] + 1
			if rng.IntN(4) == 0 && next[i] > 0 {
				n = 1 + rng.Uint64N(next[i]) // a duplicate or a too-old one
			} else {
				next[i] = n
				n += uint64(rng.IntN(3)) * ClientWindow / 2 // jumps move the window
				next[i] = n
			}
			reqs = append(reqs, Request{ClientID: clients[i], RequestNumber: n, Operation: putOp("k", string(rune('a'+i)))})
		}
		return reqs
	}
	for seq := uint64(1); seq <= 60; seq++ {
		reqs := batch()
		if _, err := tent.exe.ApplyTentative(seq, reqs); err != nil {
			t.Fatal(err)
		}
		for _, id := range clients {
			if tent.exe.LastRequestNumber(id) != plain.exe.LastRequestNumber(id) {
				t.Fatalf("sequence %d: LastRequestNumber differs", seq)
			}
			for n := uint64(1); n <= next[0]+next[1]+next[2]+1; n++ {
				if tent.exe.Status(id, n) != plain.exe.Status(id, n) {
					t.Fatalf("sequence %d: Status(%s, %d) = %v, want %v", seq, id, n, tent.exe.Status(id, n), plain.exe.Status(id, n))
				}
				a, okA := tent.exe.CachedReply(id, n)
				b, okB := plain.exe.CachedReply(id, n)
				if okA != okB || !bytes.Equal(a, b) {
					t.Fatalf("sequence %d: CachedReply(%s, %d) differs", seq, id, n)
				}
			}
		}
		if _, ok := tent.exe.TentativeSequence(); !ok {
			t.Fatalf("sequence %d: a question discarded the staged batch", seq)
		}
		if _, err := tent.exe.CommitTentative(seq); err != nil {
			t.Fatal(err)
		}
		apply(t, plain.exe, seq, reqs...)
		if tent.exe.StateDigest() != plain.exe.StateDigest() {
			t.Fatalf("sequence %d: states differ", seq)
		}
	}
}
