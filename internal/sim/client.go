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
// accepted once f+1 replicas sent the same committed reply, or 2f+1 the
// same reply naming one view and sequence (tentative replies: the
// clients of even index accept them).
type client struct {
	*simkit.Client[[]byte]
	w      *world
	signer *crypto.Signer
	view   uint64
	// replies holds each replica's reply to the pending operation
	// (client/client.go's rule: a committed reply stands, a tentative one
	// gives way to a later one).
	replies map[uint32]simReply
	// reading: the pending operation is a read-only request (see
	// read.go); readOp is its operation, for the ordered fallback.
	reading bool
	readOp  []byte
}

// simReply is one replica's reply to the pending operation.
type simReply struct {
	outcome   string
	view, seq uint64
	tentative bool
}

// tentative reports whether the client accepts tentative replies.
func (c *client) tentative() bool { return c.Index%2 == 0 }

// Request (simkit.Network) signs client's new request: a frame.
func (w *world) Request(client int, number uint64, operation []byte) ([]byte, error) {
	c := w.clients[client]
	c.replies = map[uint32]simReply{}
	c.reading, c.readOp = w.wantsFastRead(operation), operation
	return c.signRequest(&wire.Request{ClientId: c.ID, RequestNumber: number, Operation: operation, ReadOnly: c.reading,
		Tentative: !c.reading && c.tentative()})
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

// handleReply applies client/client.go's rule: a replica's committed
// reply stands and a tentative one gives way to a later one; f+1
// committed replies with the same outcome decide, and so do 2f+1 with the
// same outcome, view and sequence (tentative or not); the view moves to
// the (f+1)-th highest view of the deciding replies.
func (c *client) handleReply(from uint32, r *wire.Reply) {
	if c.Answers(from, r) == nil || r.ReadOnly != c.reading || (r.Tentative && (c.reading || r.Error != "")) {
		return
	}
	if prev, seen := c.replies[from]; seen && !prev.tentative {
		return
	}
	rec := simReply{outcome: "result:" + string(r.Result), view: r.View, seq: r.Sequence, tentative: r.Tentative}
	if r.Error != "" {
		rec.outcome = "error:" + r.Error
	}
	c.replies[from] = rec
	views, ok := c.decided(rec)
	if !ok {
		if c.reading && c.readQuorumLost(c.w.readQuorum()) {
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
	if v := views[len(views)-c.w.f-1]; v > c.view {
		c.view = v
	}
	c.Accept(c.w.rng, c.w.now, r)
	c.w.res.Operations++
	if c.reading {
		c.w.res.FastReads++
	}
	if rec.tentative {
		c.w.res.TentativeAccepts++
	}
}

// decided reports whether rec's outcome is decided, with the views of
// the replies that decide it: for a read ReadQuorum matching answers; for
// an ordered request f+1 matching committed replies, or 2f+1 matching
// replies of rec's view and sequence.
func (c *client) decided(rec simReply) ([]uint64, bool) {
	var committed, tagged []uint64
	for _, o := range c.replies {
		if o.outcome != rec.outcome {
			continue
		}
		if !o.tentative {
			committed = append(committed, o.view)
		}
		if rec.seq != 0 && o.view == rec.view && o.seq == rec.seq {
			tagged = append(tagged, o.view)
		}
	}
	tentativeQuorum := 2*c.w.f + 1
	if c.w.cfg.Plant == PlantTentativeQuorum {
		tentativeQuorum = c.w.f + 1
	}
	switch {
	case c.reading:
		return committed, len(committed) >= c.w.readQuorum()
	case len(committed) >= c.w.f+1:
		return committed, true
	case len(tagged) >= tentativeQuorum:
		return tagged, true
	}
	return nil, false
}

// clientIndex returns the simulated client with this id, or -1.
func (w *world) clientIndex(id []byte) int { return w.work.Index(id) }
