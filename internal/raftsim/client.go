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
	return &wire.Request{ClientId: w.clients[client].ID, RequestNumber: number, Operation: operation}, nil
}

// Fail (simkit.Network) reports a request that could not be encoded.
func (w *world) Fail(err error) { w.violate(KindInternal, err.Error()) }

// Issued (simkit.Network) tells the checkers.
func (w *world) Issued(client []byte, number uint64, operation []byte) {
	w.check.issued(client, number, operation)
}

// Target (simkit.Network) is the replica the client believes leads
// (replica 0 until a reply names one).
func (w *world) Target(client int) uint32 { return uint32(max(w.clients[client].leader, 0)) }

// handleReply accepts the first reply to the current operation.
func (c *client) handleReply(from uint32, r *wire.Reply) {
	if c.Answers(from, r) == nil {
		return
	}
	if h := r.GetLeaderHint(); h > 0 && int(h) <= c.w.n {
		c.leader = int(h) - 1
	}
	c.Accept(c.w.rng, c.w.now, r)
	c.w.res.Operations++
}

// clientIndex returns the simulated client with this id, or -1.
func (w *world) clientIndex(id []byte) int { return w.work.Index(id) }
