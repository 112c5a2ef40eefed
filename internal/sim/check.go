package sim

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// execRecord is the first batch a correct replica executed at a sequence.
type execRecord struct {
	replica  uint32
	view     uint64
	digest   crypto.Digest
	requests []*wire.Request
}

// checker holds the safety checks that run during a run: agreement at
// every executed batch, and validity (simkit.Validity: only issued
// requests execute, each at most once per replica).
type checker struct {
	*simkit.Validity[*host]
	fail func(kind, detail string)
	// bySeq is the batch correct replicas executed at each sequence.
	bySeq map[uint64]execRecord
	// byzClients are the client identities of the Byzantine replicas,
	// which sign what they inject: their requests count as issued.
	byzClients map[string]bool
}

func newChecker(fail func(kind, detail string)) *checker {
	c := &checker{Validity: simkit.NewValidity[*host]("sequence", "executes"), fail: fail,
		bySeq: map[uint64]execRecord{}, byzClients: map[string]bool{}}
	c.Trusted = func(client string) bool { return c.byzClients[client] }
	return c
}

func (c *checker) issued(client []byte, number uint64, operation []byte) {
	c.Issued(client, number, operation)
}

// executed checks one batch correct replica id is about to execute.
func (c *checker) executed(h *host, b protocol.CommittedBatch) {
	c.checkBatch(h, h.id, b, h.exec.Status)
}

func (c *checker) checkBatch(h *host, id uint32, b protocol.CommittedBatch, status simkit.StatusFunc) {
	rec, seen := c.bySeq[b.Sequence]
	if !seen {
		c.bySeq[b.Sequence] = execRecord{replica: id, view: b.View, digest: b.Digest, requests: b.Requests}
	} else if rec.digest != b.Digest || !sameRequests(rec.requests, b.Requests) {
		c.fail(simkit.KindAgreement, fmt.Sprintf("sequence %d: replica %d executed batch %x (view %d) %s, but replica %d executed batch %x (view %d) %s",
			b.Sequence, rec.replica, rec.digest[:6], rec.view, simkit.DescribeRequests(rec.requests), id, b.Digest[:6], b.View, simkit.DescribeRequests(b.Requests)))
		return
	}
	if kind, detail := c.Check(h, id, b.Sequence, b.Requests, status); kind != "" {
		c.fail(kind, detail)
	}
}

// installed notes that replica h installed src's state at seq: h has
// executed what src executed up to seq.
func (c *checker) installed(h, src *host, seq uint64) { c.Installed(h, src, seq) }

func sameRequests(a, b []*wire.Request) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
