package raftsim

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/wire"
)

// client is a simulated client (simkit.Client's workload, each operation
// a request) with client/client.go's Raft-mode rules: one operation at a
// time, sent to the replica it believes leads (replica 0 until a reply
// names one), sent to every replica after simkit.ClientTimeoutTicks (doubling up
// to 8x), and accepted on the first reply (ReplyQuorum 1), whose leader
// hint it then follows.
type client struct {
	*simkit.Client[*wire.Request]
	w      *world
	leader int
}

// clientID is client i's identity: 32 bytes, like an Ed25519 public key.
func clientID(i int) []byte {
	id := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("pbftnode/raftsim/client"), uint32(i)))
	return id[:]
}

// Request (simkit.Network) is client's new request (it cannot fail).
func (w *world) Request(client int, number uint64, operation []byte) (*wire.Request, error) {
	readOnly := w.readOnly()
	if readOnly {
		w.fresh.issued(client)
	}
	return &wire.Request{ClientId: w.clients[client].ID, RequestNumber: number, Operation: operation, ReadOnly: readOnly}, nil
}

// Fail (simkit.Network) reports a request that could not be encoded.
func (w *world) Fail(err error) { w.violate(KindInternal, err.Error()) }

// Issued (simkit.Network) tells the checkers.
func (w *world) Issued(client []byte, number uint64, operation []byte) {
	w.check.issued(client, number, operation)
}

// Target (simkit.Network) is the replica the client believes leads
// (replica 0 until a reply names one).
//
// In ScenarioIsolateLeader, client 0 holds a stale hint: while the old
// leader is cut off, its read-only requests go there first (as a client
// started from a saved client.Hint would), which is where a read path
// that skipped the ReadIndex round would answer from stale state.
func (w *world) Target(client int) uint32 {
	c := w.clients[client]
	if stale, ok := w.sched.staleLeader(w.now); ok && client == 0 && c.Cur != nil && c.Cur.Msg.GetReadOnly() {
		return stale
	}
	return uint32(max(c.leader, 0))
}

// handleReply accepts the first reply to the current operation (a
// read-only answer only for a read-only request, an ordered one only for
// an ordered request). A refused read-only request is ordered instead,
// under the same request number (which the read-only path never used), as
// client.Read falls back to Invoke.
func (c *client) handleReply(from uint32, r *wire.Reply) {
	o := c.Answers(from, r)
	if o == nil || r.GetReadOnly() != o.Msg.GetReadOnly() {
		return
	}
	if h := r.GetLeaderHint(); h > 0 && int(h) <= c.w.n {
		c.leader = int(h) - 1
	}
	if r.GetReadOnly() && r.GetError() != "" {
		c.w.res.ReadFallbacks++
		o.Msg = &wire.Request{ClientId: c.ID, RequestNumber: o.Number, Operation: o.Msg.GetOperation()}
		c.w.SendRequest(c.Index, c.w.Target(c.Index), o.Msg)
		return
	}
	if r.GetReadOnly() {
		c.w.res.FastReads++
	}
	if detail := c.w.fresh.accepted(c.Index, r); detail != "" {
		c.w.violate(KindStaleRead, detail)
	}
	c.Accept(c.w.rng, c.w.now, r)
	c.w.res.Operations++
}

// clientIndex returns the simulated client with this id, or -1.
func (w *world) clientIndex(id []byte) int { return w.work.Index(id) }

// readRatios are the shares of read-only operations a seed draws from
// (one in four seeds sends none); readStream seeds the draws apart from
// the run's own random stream.
var readRatios = []float64{0, 0.3, 0.6, 0.9}

const readStream = 0x7265616473

// readOnly draws whether the client's next operation goes read-only.
func (w *world) readOnly() bool {
	return w.readRatio > 0 && w.readRng.Float64() < w.readRatio
}
