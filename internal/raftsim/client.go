package raftsim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/wire"
)

// keys are the small key space the clients work on.
var keys = []string{"x", "y", "z"}

// op is one client operation and what became of it.
type op struct {
	number    uint64
	input     kvmodel.Input
	call, ret int64
	output    kvmodel.Output
	req       *wire.Request
	// retransmitAt is when the client sends to every replica; attempts
	// counts those broadcasts.
	retransmitAt int64
	attempts     int
}

// client is a simulated client with client/client.go's Raft-mode rules:
// one operation at a time, sent to the replica it believes leads (replica
// 0 until a reply names one), sent to every replica after
// ClientTimeoutTicks (doubling up to 8x), and accepted on the first reply
// (ReplyQuorum 1), whose leader hint it then follows.
type client struct {
	w   *world
	idx int
	id  []byte

	next       uint64
	total      int
	issued     int
	cur        *op
	thinkUntil int64
	leader     int
	// known is the last value this client saw per key ("" = absent).
	known   kvmodel.Known
	history []*op
}

// clientID is client i's identity: 32 bytes, like an Ed25519 public key.
func clientID(i int) []byte {
	id := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("pbftnode/raftsim/client"), uint32(i)))
	return id[:]
}

func (c *client) done() bool { return c.issued == c.total && c.cur == nil }

func (c *client) tick() {
	w := c.w
	if c.cur == nil {
		if c.issued < c.total && w.now >= c.thinkUntil {
			c.issue()
		}
		return
	}
	if w.now >= c.cur.retransmitAt {
		c.cur.attempts++
		for i := range w.n {
			w.sendRequest(c.idx, uint32(i), c.cur.req)
		}
		c.cur.retransmitAt = w.now + ClientTimeoutTicks<<min(c.cur.attempts, 3)
	}
}

func (c *client) issue() {
	w := c.w
	c.next++
	c.issued++
	in, encoded := kvmodel.NextInput(w.rng, keys[w.rng.IntN(len(keys))], fmt.Sprintf("c%d.%d", c.idx, c.next), c.known)
	req := &wire.Request{ClientId: c.id, RequestNumber: c.next, Operation: encoded}
	c.cur = &op{number: c.next, input: in, call: w.now, req: req, retransmitAt: w.now + ClientTimeoutTicks}
	w.check.issued(c.id, c.next, encoded)
	w.sendRequest(c.idx, uint32(max(c.leader, 0)), req)
}

// handleReply accepts the first reply to the current operation.
func (c *client) handleReply(from uint32, r *wire.Reply) {
	if r.GetReplica() != from || string(r.GetClientId()) != string(c.id) {
		return
	}
	o := c.cur
	if o == nil || r.GetRequestNumber() != o.number {
		return
	}
	if h := r.GetLeaderHint(); h > 0 && int(h) <= c.w.n {
		c.leader = int(h) - 1
	}
	o.ret = c.w.now
	o.output = kvmodel.OutputOf(r.GetError(), r.GetResult())
	c.known.Record(o.input, o.output)
	c.history = append(c.history, o)
	c.cur = nil
	c.w.res.Operations++
	c.thinkUntil = c.w.now + c.w.rng.Int64N(15)
}

// clientIndex returns the simulated client with this id, or -1.
func (w *world) clientIndex(id []byte) int {
	for _, c := range w.clients {
		if string(c.id) == string(id) {
			return c.idx
		}
	}
	return -1
}
