package simkit

import (
	"errors"
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
