package sim

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// keys are the small key space the clients work on.
var keys = []string{"x", "y", "z"}

// kvInput is an operation of the key-value model.
type kvInput struct {
	kind      byte // 'p' put, 'g' get, 'c' compare-and-swap
	key       string
	value     string // put: the value; cas: the new value
	old       string // cas: the expected value
	oldAbsent bool   // cas: expect the key to be absent
}

func (in kvInput) String() string {
	switch in.kind {
	case 'p':
		return fmt.Sprintf("put(%s,%s)", in.key, in.value)
	case 'g':
		return fmt.Sprintf("get(%s)", in.key)
	}
	if in.oldAbsent {
		return fmt.Sprintf("cas(%s,<absent>,%s)", in.key, in.value)
	}
	return fmt.Sprintf("cas(%s,%s,%s)", in.key, in.old, in.value)
}

// kvOutput is a result: ok (put: true; get: found; cas: swapped) and the
// value (get: the value; failed cas: the current value). unknown marks an
// operation that never completed.
type kvOutput struct {
	ok      bool
	value   string
	unknown bool
}

// op is one client operation and what became of it.
type op struct {
	number    uint64
	input     kvInput
	call, ret int64
	output    kvOutput
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
	known   map[string]string
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
	in := kvInput{key: keys[w.rng.IntN(len(keys))], value: fmt.Sprintf("c%d.%d", c.idx, c.next)}
	var encoded []byte
	switch r := w.rng.IntN(100); {
	case r < 40:
		in.kind = 'p'
		encoded = execution.EncodePut([]byte(in.key), []byte(in.value))
	case r < 70:
		in.kind = 'g'
		in.value = ""
		encoded = execution.EncodeGet([]byte(in.key))
	default:
		in.kind = 'c'
		in.old = c.known[in.key]
		in.oldAbsent = in.old == ""
		encoded = execution.EncodeCAS([]byte(in.key), []byte(in.old), in.oldAbsent, []byte(in.value))
	}
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
	if r.Error != "" {
		o.output = kvOutput{ok: false, value: "error:" + r.Error}
	} else if res, err := execution.DecodeResult(r.Result); err != nil || res.Error != "" {
		o.output = kvOutput{ok: false, value: fmt.Sprintf("undecodable result %q", r.Result)}
	} else {
		o.output = kvOutput{ok: res.Ok, value: string(res.Value)}
	}
	switch in := o.input; in.kind {
	case 'p':
		c.known[in.key] = in.value
	case 'g':
		c.known[in.key] = o.output.value
	case 'c':
		if o.output.ok {
			c.known[in.key] = in.value
		} else {
			c.known[in.key] = o.output.value
		}
	}
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
