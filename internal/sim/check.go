package sim

import (
	"encoding/hex"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// reqKey names a client request.
type reqKey struct {
	client string
	number uint64
}

func (k reqKey) String() string {
	id := hex.EncodeToString([]byte(k.client))
	if len(id) > 8 {
		id = id[:8]
	}
	return fmt.Sprintf("%s/%d", id, k.number)
}

// execRecord is the first batch a correct replica executed at a sequence.
type execRecord struct {
	replica  uint32
	view     uint64
	digest   crypto.Digest
	requests []*wire.Request
}

// checker holds the safety checks that run during a run: agreement at
// every executed batch, and validity (only issued requests execute, each
// at most once per replica).
type checker struct {
	fail func(kind, detail string)
	// bySeq is the batch correct replicas executed at each sequence.
	bySeq map[uint64]execRecord
	// issuedOps are the operations the simulated clients issued.
	issuedOps map[reqKey][]byte
	// byzClients are the client identities of the Byzantine replicas,
	// which sign what they inject: their requests count as issued.
	byzClients map[string]bool
	// executedAt[r] maps each request replica r executed to its sequence.
	executedAt map[*host]map[reqKey]uint64
	committed  map[reqKey]bool
}

func newChecker(fail func(kind, detail string)) *checker {
	return &checker{fail: fail, bySeq: map[uint64]execRecord{}, issuedOps: map[reqKey][]byte{},
		byzClients: map[string]bool{}, executedAt: map[*host]map[reqKey]uint64{}, committed: map[reqKey]bool{}}
}

func (c *checker) issued(client []byte, number uint64, operation []byte) {
	c.issuedOps[reqKey{string(client), number}] = operation
}

// status is what the replica's executor will do with a request.
type statusFunc func(client []byte, number uint64) execution.RequestStatus

// executed checks one batch correct replica id is about to execute.
func (c *checker) executed(h *host, b protocol.CommittedBatch) {
	c.checkBatch(h, h.id, b, h.exec.Status)
}

func (c *checker) checkBatch(h *host, id uint32, b protocol.CommittedBatch, status statusFunc) {
	rec, seen := c.bySeq[b.Sequence]
	if !seen {
		c.bySeq[b.Sequence] = execRecord{replica: id, view: b.View, digest: b.Digest, requests: b.Requests}
	} else if rec.digest != b.Digest || !sameRequests(rec.requests, b.Requests) {
		c.fail(KindAgreement, fmt.Sprintf("sequence %d: replica %d executed batch %x (view %d) %s, but replica %d executed batch %x (view %d) %s",
			b.Sequence, rec.replica, rec.digest[:6], rec.view, describeRequests(rec.requests), id, b.Digest[:6], b.View, describeRequests(b.Requests)))
		return
	}
	done := c.executedAt[h]
	if done == nil {
		done = map[reqKey]uint64{}
		c.executedAt[h] = done
	}
	inBatch := map[reqKey]bool{}
	for _, r := range b.Requests {
		k := reqKey{string(r.ClientId), r.RequestNumber}
		if want, ok := c.issuedOps[k]; ok {
			if string(want) != string(r.Operation) {
				c.fail(KindValidity, fmt.Sprintf("sequence %d: replica %d executes request %s with an operation its client did not issue", b.Sequence, id, k))
				return
			}
		} else if !c.byzClients[k.client] {
			c.fail(KindValidity, fmt.Sprintf("sequence %d: replica %d executes request %s that no client issued", b.Sequence, id, k))
			return
		}
		c.committed[k] = true
		if inBatch[k] || status(r.ClientId, r.RequestNumber) != execution.RequestNew {
			continue // the executor answers it from its reply cache (or skips it)
		}
		inBatch[k] = true
		if prev, ok := done[k]; ok {
			c.fail(KindValidity, fmt.Sprintf("replica %d executes request %s a second time: at sequence %d, after sequence %d", id, k, b.Sequence, prev))
			return
		}
		done[k] = b.Sequence
	}
}

// installed notes that replica h installed src's state at seq: h has
// executed what src executed up to seq.
func (c *checker) installed(h, src *host, seq uint64) {
	done := map[reqKey]uint64{}
	for k, s := range c.executedAt[src] {
		if s <= seq {
			done[k] = s
		}
	}
	c.executedAt[h] = done
}

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

func describeRequests(rs []*wire.Request) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = reqKey{string(r.ClientId), r.RequestNumber}.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}
