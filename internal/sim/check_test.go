package sim

import (
	"math"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

func put(client int, call, ret int64, key, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: kvInput{kind: 'p', key: key, value: value}, Call: call, Output: kvOutput{ok: true}, Return: ret}
}

func get(client int, call, ret int64, key, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: kvInput{kind: 'g', key: key}, Call: call,
		Output: kvOutput{ok: value != "", value: value}, Return: ret}
}

func TestLinearizabilityChecker(t *testing.T) {
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"sequential", []porcupine.Operation{put(0, 1, 2, "x", "a"), get(1, 3, 4, "x", "a")}, true},
		{"concurrent read may see old value", []porcupine.Operation{put(0, 1, 10, "x", "a"), get(1, 2, 3, "x", "")}, true},
		{"stale read after write returned", []porcupine.Operation{put(0, 1, 2, "x", "a"), get(1, 3, 4, "x", "")}, false},
		{"read of a value never written", []porcupine.Operation{get(1, 3, 4, "x", "b")}, false},
		{"reads go back in time", []porcupine.Operation{
			put(0, 1, 2, "x", "a"), put(0, 3, 4, "x", "b"), get(1, 5, 6, "x", "b"), get(2, 7, 8, "x", "a"),
		}, false},
		{"cas succeeds on expected value", []porcupine.Operation{
			put(0, 1, 2, "x", "a"),
			{ClientId: 1, Input: kvInput{kind: 'c', key: "x", old: "a", value: "b"}, Call: 3, Output: kvOutput{ok: true}, Return: 4},
			get(2, 5, 6, "x", "b"),
		}, true},
		{"two cas from the same old value both succeed", []porcupine.Operation{
			put(0, 1, 2, "x", "a"),
			{ClientId: 1, Input: kvInput{kind: 'c', key: "x", old: "a", value: "b"}, Call: 3, Output: kvOutput{ok: true}, Return: 6},
			{ClientId: 2, Input: kvInput{kind: 'c', key: "x", old: "a", value: "c"}, Call: 3, Output: kvOutput{ok: true}, Return: 6},
		}, false},
		{"failed cas reports the current value", []porcupine.Operation{
			put(0, 1, 2, "x", "a"),
			{ClientId: 1, Input: kvInput{kind: 'c', key: "x", oldAbsent: true, value: "b"}, Call: 3, Output: kvOutput{ok: false, value: "a"}, Return: 4},
		}, true},
		{"pending put may or may not take effect", []porcupine.Operation{
			{ClientId: 0, Input: kvInput{kind: 'p', key: "x", value: "a"}, Call: 1, Output: kvOutput{unknown: true}, Return: math.MaxInt64},
			get(1, 3, 4, "x", ""), get(1, 5, 6, "x", "a"),
		}, true},
	}
	for _, c := range cases {
		ok, detail := checkLinearizable(c.ops)
		if ok != c.ok {
			t.Errorf("%s: linearizable = %v, want %v (%s)", c.name, ok, c.ok, detail)
		}
	}
}

func testRequest(t *testing.T, client byte, number uint64, op []byte) *wire.Request {
	t.Helper()
	return &wire.Request{ClientId: []byte(strings.Repeat(string(rune('a'+client)), 32)), RequestNumber: number, Operation: op}
}

func TestAgreementChecker(t *testing.T) {
	var failures []string
	c := newChecker(func(kind, detail string) { failures = append(failures, kind+": "+detail) })
	a := testRequest(t, 0, 1, execution.EncodePut([]byte("x"), []byte("1")))
	b := testRequest(t, 1, 1, execution.EncodePut([]byte("x"), []byte("2")))
	c.issued(a.ClientId, 1, a.Operation)
	c.issued(b.ClientId, 1, b.Operation)
	always := func([]byte, uint64) execution.RequestStatus { return execution.RequestNew }
	r1, r2 := &host{id: 1}, &host{id: 2}
	batchA := protocol.CommittedBatch{Sequence: 1, Digest: crypto.Digest{1}, Requests: []*wire.Request{a}}
	c.checkBatch(r1, 1, batchA, always)
	c.checkBatch(r2, 2, batchA, always)
	if len(failures) != 0 {
		t.Fatalf("same batch flagged: %v", failures)
	}
	// Same digest, different requests: still a disagreement.
	c.checkBatch(&host{id: 3}, 3, protocol.CommittedBatch{Sequence: 1, Digest: crypto.Digest{1}, Requests: []*wire.Request{b}}, always)
	if len(failures) != 1 || !strings.HasPrefix(failures[0], KindAgreement) {
		t.Fatalf("different requests at one sequence: %v", failures)
	}
	c.checkBatch(&host{id: 3}, 3, protocol.CommittedBatch{Sequence: 1, Digest: crypto.Digest{2}, Requests: []*wire.Request{a}}, always)
	if len(failures) != 2 || !strings.HasPrefix(failures[1], KindAgreement) {
		t.Fatalf("different digests at one sequence: %v", failures)
	}
}

func TestValidityChecker(t *testing.T) {
	var failures []string
	c := newChecker(func(kind, detail string) { failures = append(failures, kind+": "+detail) })
	a := testRequest(t, 0, 1, execution.EncodePut([]byte("x"), []byte("1")))
	c.issued(a.ClientId, 1, a.Operation)
	always := func([]byte, uint64) execution.RequestStatus { return execution.RequestNew }
	h := &host{id: 1}
	c.checkBatch(h, 1, protocol.CommittedBatch{Sequence: 1, Requests: []*wire.Request{a}}, always)
	if len(failures) != 0 {
		t.Fatal(failures)
	}
	// Executed again as new at a later sequence: at most once is broken.
	c.checkBatch(h, 1, protocol.CommittedBatch{Sequence: 2, Digest: crypto.Digest{2}, Requests: []*wire.Request{a}}, always)
	if len(failures) != 1 || !strings.HasPrefix(failures[0], KindValidity) {
		t.Fatalf("double execution: %v", failures)
	}
	// A request no client issued.
	forged := testRequest(t, 5, 1, execution.EncodeGet([]byte("x")))
	c.checkBatch(h, 1, protocol.CommittedBatch{Sequence: 3, Digest: crypto.Digest{3}, Requests: []*wire.Request{forged}}, always)
	if len(failures) != 2 || !strings.Contains(failures[1], "no client issued") {
		t.Fatalf("unissued request: %v", failures)
	}
	// An issued request number with a different operation.
	changed := testRequest(t, 0, 1, execution.EncodePut([]byte("x"), []byte("evil")))
	c.checkBatch(&host{id: 2}, 2, protocol.CommittedBatch{Sequence: 4, Digest: crypto.Digest{4}, Requests: []*wire.Request{changed}}, always)
	if len(failures) != 3 || !strings.Contains(failures[2], "did not issue") {
		t.Fatalf("altered request: %v", failures)
	}
}
