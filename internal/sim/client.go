package sim

import (
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// client is a simulated client (simkit.Client's workload, each operation
// a signed request frame): one operation at a time, sent to the primary
// it believes in, broadcast after simkit.ClientTimeoutTicks (doubling up to 8x),
// accepted once f+1 replicas sent the same reply.
type client struct {
	*simkit.Client[[]byte]
	w      *world
	signer *crypto.Signer
	view   uint64
	// results and views hold each replica's first reply to the pending
	// operation (client.go's rule).
	results map[uint32]string
	views   map[uint32]uint64
	// reading: the pending operation is a read-only request (see
	// read.go); readOp is its operation, for the ordered fallback.
	reading bool
	readOp  []byte
}

// Request (simkit.Network) signs client's new request: a frame.
func (w *world) Request(client int, number uint64, operation []byte) ([]byte, error) {
	c := w.clients[client]
	c.results, c.views = map[uint32]string{}, map[uint32]uint64{}
	c.reading, c.readOp = w.wantsFastRead(operation), operation
	return c.signRequest(&wire.Request{ClientId: c.ID, RequestNumber: number, Operation: operation, ReadOnly: c.reading})
}

// Fail (simkit.Network) reports a request that could not be encoded.
func (w *world) Fail(err error) { w.violate(KindInternal, err.Error()) }

// Issued (simkit.Network) tells the checkers.
func (w *world) Issued(client []byte, number uint64, operation []byte) {
	w.check.issued(client, number, operation)
}

// Target (simkit.Network) is the primary of the view the client last
// learnt.
func (w *world) Target(client int) uint32 { return protocol.Primary(w.clients[client].view, w.n) }

// handleReply applies client/client.go's rule: a replica's first reply
// stands; f+1 replicas with the same outcome decide; the view moves to the
// (f+1)-th highest view those replicas report.
func (c *client) handleReply(from uint32, r *wire.Reply) {
	if c.Answers(from, r) == nil || r.ReadOnly != c.reading {
		return
	}
	if _, seen := c.results[from]; seen {
		return
	}
	outcome := "result:" + string(r.Result)
	if r.Error != "" {
		outcome = "error:" + r.Error
	}
	c.results[from] = outcome
	c.views[from] = r.View
	var views []uint64
	for rep, out := range c.results {
		if out == outcome {
			views = append(views, c.views[rep])
		}
	}
	quorum := c.w.f + 1
	if c.reading {
		quorum = c.w.readQuorum()
	}
	if len(views) < quorum {
		if c.reading && c.readQuorumLost(quorum) {
			c.w.fallBack(c)
		}
		return
	}
	if c.reading && r.Error != "" {
		// 2f+1 refusals of the read-only path: the client orders it.
		c.w.fallBack(c)
		return
	}
	slices.Sort(views)
	if v := views[len(views)-quorum]; v > c.view {
		c.view = v
	}
	c.Accept(c.w.rng, c.w.now, r)
	c.w.res.Operations++
	if c.reading {
		c.w.res.FastReads++
	}
}

// clientIndex returns the simulated client with this id, or -1.
func (w *world) clientIndex(id []byte) int { return w.work.Index(id) }
