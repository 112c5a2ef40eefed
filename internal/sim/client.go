package sim

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/protocol"
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
	frame     []byte
	// results and views hold each replica's first reply (client.go's rule).
	results map[uint32]string
	views   map[uint32]uint64
	// retransmitAt is when the client (re)broadcasts; attempts counts
	// broadcasts.
	retransmitAt int64
	attempts     int
}

// client is a simulated client: one operation at a time, sent to the
// primary it believes in, broadcast after ClientTimeoutTicks (doubling up
// to 8x), accepted once f+1 replicas sent the same reply.
type client struct {
	w      *world
	idx    int
	signer *crypto.Signer
	id     []byte

	next       uint64
	total      int
	issued     int
	cur        *op
	thinkUntil int64
	view       uint64
	// known is the last value this client saw per key ("" = absent).
	known   kvmodel.Known
	history []*op
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
			w.sendRequest(c.idx, uint32(i), c.cur.frame)
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
	payload, err := proto.Marshal(req)
	if err != nil {
		w.violate(KindInternal, fmt.Sprintf("client %d: marshal request: %v", c.idx, err))
		return
	}
	signed := &wire.Signed{Payload: payload, Signature: c.signer.Sign(crypto.DomainClientRequest, payload)}
	frame, err := proto.Marshal(signed)
	if err != nil {
		w.violate(KindInternal, fmt.Sprintf("client %d: marshal request: %v", c.idx, err))
		return
	}
	o := &op{number: c.next, input: in, call: w.now, frame: frame, results: map[uint32]string{}, views: map[uint32]uint64{},
		retransmitAt: w.now + ClientTimeoutTicks}
	c.cur = o
	w.check.issued(c.id, c.next, encoded)
	w.sendRequest(c.idx, protocol.Primary(c.view, w.n), frame)
}

// handleReply applies client/client.go's rule: a replica's first reply
// stands; f+1 replicas with the same outcome decide; the view moves to the
// (f+1)-th highest view those replicas report.
func (c *client) handleReply(from uint32, r *wire.Reply) {
	if r.Replica != from || string(r.ClientId) != string(c.id) {
		return
	}
	o := c.cur
	if o == nil || r.RequestNumber != o.number {
		return
	}
	if _, seen := o.results[from]; seen {
		return
	}
	outcome := "result:" + string(r.Result)
	if r.Error != "" {
		outcome = "error:" + r.Error
	}
	o.results[from] = outcome
	o.views[from] = r.View
	var views []uint64
	for rep, out := range o.results {
		if out == outcome {
			views = append(views, o.views[rep])
		}
	}
	quorum := c.w.f + 1
	if len(views) < quorum {
		return
	}
	slices.Sort(views)
	if v := views[len(views)-quorum]; v > c.view {
		c.view = v
	}
	c.accept(r)
}

func (c *client) accept(r *wire.Reply) {
	w := c.w
	o := c.cur
	o.ret = w.now
	o.output = kvmodel.OutputOf(r.Error, r.Result)
	c.known.Record(o.input, o.output)
	c.history = append(c.history, o)
	c.cur = nil
	w.res.Operations++
	c.thinkUntil = w.now + w.rng.Int64N(15)
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
