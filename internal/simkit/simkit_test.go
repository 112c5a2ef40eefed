package simkit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/wire"
)

func TestQueueOrdersByTickThenKeyThenPush(t *testing.T) {
	var q Queue[string]
	rng := rand.New(rand.NewPCG(1, 2))
	q.Push(rng, 5, "late")
	for _, p := range []string{"a", "b", "c"} {
		q.Push(rng, 2, p)
	}
	if q.Due(1) || !q.Due(2) || q.Len() != 4 {
		t.Fatalf("due(1)=%v due(2)=%v len=%d", q.Due(1), q.Due(2), q.Len())
	}
	seen := map[string]bool{}
	for q.Due(2) {
		e := q.Pop()
		if e.At != 2 {
			t.Fatalf("popped %q at %d before the tick-5 event", e.Payload, e.At)
		}
		seen[e.Payload] = true
	}
	if len(seen) != 3 || q.Pop().Payload != "late" {
		t.Fatalf("seen %v", seen)
	}
}

func TestFaultsDrawInAFixedOrder(t *testing.T) {
	draw := func() string {
		r := rand.New(rand.NewPCG(7, 7))
		f := DrawFaults[int](r, 4, 1)
		f.Arm(r)
		var b strings.Builder
		b.WriteString(f.String())
		for now := range int64(400) {
			f.Partition(r, now)
			f.CrashDue(r, now, 0)
			d, dropped, copies := f.Delay(r, now)
			b.WriteString(strings.Repeat("x", int(d)+copies))
			if dropped {
				b.WriteString("!")
			}
		}
		return b.String()
	}
	if a, b := draw(), draw(); a != b {
		t.Fatal("one seed drew two different plans")
	}
}

func TestCalmFaultsDeliverEverything(t *testing.T) {
	f := CalmFaults[int](3)
	r := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		d, dropped, copies := f.Delay(r, 0)
		if dropped || copies != 1 || d < 1 || d > MaxNetworkDelay {
			t.Fatalf("calm delay %d dropped %v copies %d", d, dropped, copies)
		}
	}
	if !f.Linked(0, 0, 2) {
		t.Fatal("calm network split")
	}
}

func TestSummarizeAddsNestedCounters(t *testing.T) {
	type counters struct {
		Progress
		Extra int64
		Work
	}
	var total counters
	var tally Tally
	one := counters{Progress: Progress{Runs: 1, Steps: 10, Ticks: 3}, Extra: -2, Work: Work{Operations: 4}}
	Summarize(&total, &tally, one, 1, nil)
	Summarize(&total, &tally, one, 2, []Violation{{Seed: 2, Kind: KindLiveness}})
	want := counters{Progress: Progress{Runs: 2, Steps: 20, Ticks: 6}, Extra: -4, Work: Work{Operations: 8}}
	if total != want {
		t.Fatalf("total %+v, want %+v", total, want)
	}
	if tally.Violations != 1 || len(tally.FailedSeeds) != 1 || tally.FailedSeeds[0] != 2 {
		t.Fatalf("tally %+v", tally)
	}
}

func TestValidity(t *testing.T) {
	v := NewValidity[int]("index", "applies")
	id := []byte("client-a")
	v.Issued(id, 1, []byte("op"))
	isNew := func([]byte, uint64) execution.RequestStatus { return execution.RequestNew }
	req := &wire.Request{ClientId: id, RequestNumber: 1, Operation: []byte("op")}
	if kind, d := v.Check(0, 0, 5, []*wire.Request{req, req}, isNew); kind != "" {
		t.Fatalf("an issued request in one batch twice: %s", d)
	}
	v.Installed(1, 0, 5)
	if kind, _ := v.Check(1, 1, 6, []*wire.Request{req}, isNew); kind != KindValidity {
		t.Fatal("a request run as new again after a state transfer passed")
	}
	v.Restarted(1, 4)
	if kind, d := v.Check(1, 1, 5, []*wire.Request{req}, isNew); kind != "" {
		t.Fatalf("a replica that restarted below 5 may run it again: %s", d)
	}
	other := &wire.Request{ClientId: id, RequestNumber: 2, Operation: []byte("op")}
	if _, d := v.Check(2, 2, 1, []*wire.Request{other}, isNew); !strings.Contains(d, "index 1: replica 2 applies request") || !strings.Contains(d, "no client issued") {
		t.Fatalf("unissued request: %q", d)
	}
}

func TestDriveStopsAtSetupError(t *testing.T) {
	var ran bool
	var got string
	Drive(func() error { return errors.New("boom") }, func() { ran = true }, func() { ran = true },
		func(kind, detail string) { got = kind + ": " + detail })
	if ran || got != "internal: setup: boom" {
		t.Fatalf("ran %v, failure %q", ran, got)
	}
}

func TestRunManyKeepsSeedOrder(t *testing.T) {
	got := RunMany(10, 5, 3, func(seed uint64) uint64 { return seed * 2 })
	for i, r := range got {
		if r != uint64(10+i)*2 {
			t.Fatalf("result %d is %d", i, r)
		}
	}
}

// fakeNet records what the clients send.
type fakeNet struct {
	sent   []string
	issued int
	fail   error
}

func (n *fakeNet) Request(client int, number uint64, operation []byte) (uint64, error) {
	return number, n.fail
}
func (n *fakeNet) Issued([]byte, uint64, []byte) { n.issued++ }
func (n *fakeNet) Target(client int) uint32      { return 2 }
func (n *fakeNet) SendRequest(client int, to uint32, m uint64) {
	n.sent = append(n.sent, fmt.Sprintf("c%d->%d#%d", client, to, m))
}
func (n *fakeNet) Fail(err error) { n.fail = nil }

func TestWorkloadIssuesResendsAndAccepts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	c := NewClient[uint64](0, []byte("id"), 1, 0)
	work := Workload[uint64]{&c}
	net := &fakeNet{}
	if work.Tick(rng, 0, 3, net) || net.issued != 1 || len(net.sent) != 1 || net.sent[0] != "c0->2#1" {
		t.Fatalf("first tick: sent %v issued %d", net.sent, net.issued)
	}
	if work.Pending() != 1 || work.Overdue(10, 0, 20) != "" || work.Overdue(30, 0, 20) == "" {
		t.Fatal("pending and overdue operations miscounted")
	}
	work.Tick(rng, ClientTimeoutTicks, 3, net)
	if len(net.sent) != 4 || c.Cur.RetransmitAt != ClientTimeoutTicks+ClientTimeoutTicks<<1 {
		t.Fatalf("resend: sent %v, next at %d", net.sent, c.Cur.RetransmitAt)
	}
	reply := &wire.Reply{Replica: 1, ClientId: []byte("id"), RequestNumber: 1, Result: []byte{}}
	if c.Answers(2, reply) != nil || c.Answers(1, reply) == nil {
		t.Fatal("a reply from a replica other than its sender answered")
	}
	c.Accept(rng, 70, reply)
	if !c.Done() || work.Pending() != 0 || len(work.History()) != 1 || work.Index([]byte("id")) != 0 {
		t.Fatalf("accepted operation: done %v history %d", c.Done(), len(work.History()))
	}
}

func TestWorkloadReportsEncodingErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	c := NewClient[uint64](0, []byte("id"), 1, 0)
	net := &fakeNet{fail: errors.New("no")}
	Workload[uint64]{&c}.Tick(rng, 0, 3, net)
	if net.fail != nil || c.Cur != nil || net.issued != 0 || len(net.sent) != 0 {
		t.Fatalf("an unencodable request was issued: %+v", net)
	}
}
