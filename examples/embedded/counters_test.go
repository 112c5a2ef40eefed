package main

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/app"
)

// execute runs one batch of payloads on c at its next sequence.
func execute(t *testing.T, c *Counters, payloads ...[]byte) [][]byte {
	t.Helper()
	st, _ := c.Info(context.Background())
	ops := make([]app.Operation, len(payloads))
	for i, p := range payloads {
		ops[i] = app.Operation{Client: make([]byte, 32), RequestNumber: uint64(i + 1), Payload: p}
	}
	results, digest, err := c.Execute(context.Background(), st.Sequence+1, ops)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := c.Info(context.Background()); now.Sequence != st.Sequence+1 || now.Digest != digest {
		t.Fatalf("Info after Execute: %+v, Execute returned digest %x", now, digest)
	}
	return results
}

func value(t *testing.T, res []byte) int64 {
	t.Helper()
	v, err := DecodeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Operations and their refusals; the digest depends on the state only,
// not on the order counters were created in.
func TestCountersOperations(t *testing.T) {
	a, b := NewCounters(), NewCounters()
	res := execute(t, a, EncodeAdd("x", 5), EncodeAdd("y", -2), EncodeAdd("x", 1), EncodeRead("x"), EncodeRead("none"))
	for i, want := range []int64{5, -2, 6, 6, 0} {
		if got := value(t, res[i]); got != want {
			t.Fatalf("result %d = %d, want %d", i, got, want)
		}
	}
	execute(t, b, EncodeAdd("y", -2))
	execute(t, b, EncodeAdd("x", 6))
	if da, db := a.digest(), b.digest(); da != db {
		t.Fatalf("equal counters, digests %x and %x", da, db)
	}
	refused := execute(t, a, nil, []byte{opAdd}, EncodeAdd("", 1), append(EncodeAdd("x", 1), 0),
		EncodeAdd(strings.Repeat("n", maxNameLen+1), 1), EncodeAdd("x", math.MaxInt64), EncodeAdd("y", math.MinInt64))
	for i, r := range refused {
		if _, err := DecodeResult(r); err == nil {
			t.Fatalf("refusable operation %d executed: %x", i, r)
		}
	}
	if got := a.Values(); len(got) != 2 || got["x"] != 6 || got["y"] != -2 {
		t.Fatalf("counters %v after refusals", got)
	}
	if _, _, err := a.Execute(context.Background(), 10, nil); err == nil {
		t.Fatal("Execute accepted a batch out of sequence")
	}
}

// A snapshot restores into a fresh application with the same digest and
// counters; a tampered or malformed one is refused and changes nothing.
func TestCountersSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	a := NewCounters()
	execute(t, a, EncodeAdd("b", 2), EncodeAdd("a", 1), EncodeAdd("c", -3))
	var snap bytes.Buffer
	if err := a.Snapshot(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	st, _ := a.Info(ctx)
	b := NewCounters()
	if err := b.Restore(ctx, st, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Info(ctx); got != st || b.Values()["c"] != -3 || len(b.Values()) != 3 {
		t.Fatalf("restored %+v %v, want %+v", got, b.Values(), st)
	}
	tampered := bytes.Clone(snap.Bytes())
	tampered[len(tampered)-1]++
	bad := [][]byte{tampered, snap.Bytes()[:snap.Len()-1], append(bytes.Clone(snap.Bytes()), 0), {0, 0, 0x10, 0}}
	for i, s := range bad {
		if err := b.Restore(ctx, st, bytes.NewReader(s)); err == nil {
			t.Fatalf("bad snapshot %d restored", i)
		}
		if got, _ := b.Info(ctx); got != st {
			t.Fatalf("bad snapshot %d changed the state to %+v", i, got)
		}
	}
	if err := b.Restore(ctx, app.State{}, bytes.NewReader(nil)); err != nil || len(b.Values()) != 0 {
		t.Fatalf("restore of the initial state: %v, %v", err, b.Values())
	}
}

// The program reports a replica whose application disagrees: other
// counters, or the same counters at another sequence.
func TestCheckApplicationsReportsDisagreement(t *testing.T) {
	want := map[string]int64{sharedCounter: 1}
	apps := []*Counters{NewCounters(), NewCounters()}
	execute(t, apps[0], EncodeAdd(sharedCounter, 1))
	execute(t, apps[1], EncodeAdd(sharedCounter, 2))
	c := &cluster{apps: apps}
	if err := c.checkApplications(context.Background(), 1, want); err == nil || !strings.Contains(err.Error(), "application 1") {
		t.Fatalf("checkApplications = %v, want application 1 reported", err)
	}
	apps[1] = NewCounters()
	execute(t, apps[1], EncodeAdd(sharedCounter, 1))
	if err := c.checkApplications(context.Background(), 1, want); err != nil {
		t.Fatalf("agreeing applications: %v", err)
	}
	execute(t, apps[1], nil)
	if err := c.checkApplications(context.Background(), 1, want); err == nil {
		t.Fatal("checkApplications accepted an application at another sequence")
	}
}

// Hostile operation bytes never panic and change nothing when refused.
func FuzzCountersExecute(f *testing.F) {
	f.Add(EncodeAdd("x", 1))
	f.Add(EncodeRead("x"))
	f.Add([]byte{opAdd, 200})
	f.Fuzz(func(t *testing.T, op []byte) {
		c := NewCounters()
		before := c.digest()
		res := execute(t, c, op)
		if _, err := DecodeResult(res[0]); err != nil && c.digest() != before {
			t.Fatalf("refused operation %x changed the state", op)
		}
	})
}
