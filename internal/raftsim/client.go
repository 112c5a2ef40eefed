package raftsim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/wire"
)

// client is a simulated client (simkit.Client's workload, each operation
// a request) with client/client.go's Raft-mode rules: one operation at a
// time, sent to the replica it believes leads (replica 0 until a reply
// names one), sent to every replica after ClientTimeoutTicks (doubling up
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

func (c *client) issue() {
	w := c.w
	o, encoded, err := c.Issue(w.rng, w.now, ClientTimeoutTicks, c.request)
	if err != nil {
		w.violate(KindInternal, fmt.Sprintf("client %d: %v", c.Index, err))
		return
	}
	w.check.issued(c.ID, o.Number, encoded)
	w.sendRequest(c.Index, uint32(max(c.leader, 0)), o.Msg)
}

// request is request number with operation (it cannot fail).
func (c *client) request(number uint64, operation []byte) (*wire.Request, error) {
	return &wire.Request{ClientId: c.ID, RequestNumber: number, Operation: operation}, nil
}

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

// issue issues client i's next operation.
func (w *world) issue(i int) { w.clients[i].issue() }

// clientIndex returns the simulated client with this id, or -1.
func (w *world) clientIndex(id []byte) int { return w.work.Index(id) }
