package sim

import (
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/internal/simkit"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

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
	if len(failures) != 1 || !strings.HasPrefix(failures[0], simkit.KindAgreement) {
		t.Fatalf("different requests at one sequence: %v", failures)
	}
	c.checkBatch(&host{id: 3}, 3, protocol.CommittedBatch{Sequence: 1, Digest: crypto.Digest{2}, Requests: []*wire.Request{a}}, always)
	if len(failures) != 2 || !strings.HasPrefix(failures[1], simkit.KindAgreement) {
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
	if len(failures) != 1 || !strings.HasPrefix(failures[0], simkit.KindValidity) {
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
