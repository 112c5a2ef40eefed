package simkit

import (
	"fmt"
	"math/rand/v2"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/wire"
)

// ClientTimeoutTicks is how long a client waits for the replica it sent
// an operation to before sending it to every replica; later resends
// double the wait up to 8x.
const ClientTimeoutTicks = 60

// Op is one client operation and what became of it; M is how the
// simulator sends it (a signed frame, a request).
type Op[M any] struct {
	Number    uint64
	Input     fmt.Stringer
	Call, Ret int64
	Output    any
	Msg       M
	// RetransmitAt is when the client sends to every replica; Attempts
	// counts those broadcasts.
	RetransmitAt int64
	Attempts     int
}

// Source is the application a simulated client works on: it draws the
// client's operations and reads the replies as the outputs of the model
// that its simulator checks the history against (kvmodel.Model for
// kvmodel.NewSource's key-value store; another application brings its
// own model for CheckHistory). One Source per client: it may keep what the
// client learned.
type Source interface {
	// Next draws operation number of client: its model input and its
	// encoding for the application.
	Next(rng *rand.Rand, client int, number uint64) (input fmt.Stringer, encoded []byte)
	// Output turns the reply to input (its refusal text, or its encoded
	// result) into the model's output, and learns from it.
	Output(input fmt.Stringer, refusal string, result []byte) any
	// Pending is the history entry of an operation of client called at
	// call that never returned.
	Pending(client int, input fmt.Stringer, call int64) porcupine.Operation
}

// Client is the workload of one simulated client: Total operations drawn
// from its Source (a small key space by default), one at a time, each
// after a random think time,
// resent to every replica after ClientTimeoutTicks, doubling up to 8x. The
// simulator decides where a new operation goes and when a reply decides
// it.
type Client[M any] struct {
	Index int
	ID    []byte
	// Cur is the pending operation (nil when none).
	Cur *Op[M]
	// History is the completed operations, in order.
	History []*Op[M]

	next       uint64
	total      int
	issued     int
	thinkUntil int64
	source     Source
}

// NewClient returns client index with identity id that issues total
// key-value operations (kvmodel.NewSource), the first not before tick
// thinkUntil.
func NewClient[M any](index int, id []byte, total int, thinkUntil int64) Client[M] {
	return NewClientOf[M](index, id, total, thinkUntil, kvmodel.NewSource())
}

// NewClientOf is NewClient with the operations drawn from source.
func NewClientOf[M any](index int, id []byte, total int, thinkUntil int64, source Source) Client[M] {
	return Client[M]{Index: index, ID: id, total: total, thinkUntil: thinkUntil, source: source}
}

// Done reports whether every operation completed.
func (c *Client[M]) Done() bool { return c.issued == c.total && c.Cur == nil }

// tick is the client's tick at now: it issues a new operation when one
// is due, or resends the pending one to each of the n replicas when its
// timeout expired.
func (c *Client[M]) tick(rng *rand.Rand, now int64, n int, net Network[M]) error {
	if c.Cur == nil {
		if c.issued < c.total && now >= c.thinkUntil {
			return c.issue(rng, now, net)
		}
		return nil
	}
	if now >= c.Cur.RetransmitAt {
		c.Cur.Attempts++
		for i := range n {
			net.SendRequest(c.Index, uint32(i), c.Cur.Msg)
		}
		c.Cur.RetransmitAt = now + ClientTimeoutTicks<<min(c.Cur.Attempts, 3)
	}
	return nil
}

// Network is what a simulator's clients send through, for clients whose
// operations travel as M.
type Network[M any] interface {
	// Request encodes client's new request number with operation; it is
	// called once per new operation.
	Request(client int, number uint64, operation []byte) (M, error)
	// Issued notes (for the checkers) that client issued it.
	Issued(client []byte, number uint64, operation []byte)
	// Target is the replica a new operation of client goes to first.
	Target(client int) uint32
	// SendRequest puts m from client on the network to replica to.
	SendRequest(client int, to uint32, m M)
	// Fail reports a request Request could not encode (an internal
	// error; the operation is not issued).
	Fail(err error)
}

// issue draws the next operation from rng, has net encode it, makes it
// the pending one (first resent ClientTimeoutTicks after now) and sends
// it. An encoding error leaves no operation pending.
func (c *Client[M]) issue(rng *rand.Rand, now int64, net Network[M]) error {
	c.next++
	c.issued++
	in, encoded := c.source.Next(rng, c.Index, c.next)
	m, err := net.Request(c.Index, c.next, encoded)
	if err != nil {
		return fmt.Errorf("client %d: %w", c.Index, err)
	}
	c.Cur = &Op[M]{Number: c.next, Input: in, Call: now, Msg: m, RetransmitAt: now + ClientTimeoutTicks}
	net.Issued(c.ID, c.next, encoded)
	net.SendRequest(c.Index, net.Target(c.Index), m)
	return nil
}

// Answers returns the pending operation if r, received from replica
// from, answers it, and nil otherwise.
func (c *Client[M]) Answers(from uint32, r *wire.Reply) *Op[M] {
	if r.GetReplica() != from || string(r.GetClientId()) != string(c.ID) {
		return nil
	}
	if o := c.Cur; o != nil && r.GetRequestNumber() == o.Number {
		return o
	}
	return nil
}

// Accept completes the pending operation at now with r's outcome and
// draws the think time before the next one.
func (c *Client[M]) Accept(rng *rand.Rand, now int64, r *wire.Reply) {
	o := c.Cur
	o.Ret = now
	o.Output = c.source.Output(o.Input, r.GetError(), r.GetResult())
	c.History = append(c.History, o)
	c.Cur = nil
	c.thinkUntil = now + rng.Int64N(15)
}

// Workload is a simulator's clients, by index.
type Workload[M any] []*Client[M]

// Tick is every client's tick at now, in index order, over n replicas.
// It reports whether every client is done.
func (cs Workload[M]) Tick(rng *rand.Rand, now int64, n int, net Network[M]) (done bool) {
	done = true
	for _, c := range cs {
		if err := c.tick(rng, now, n, net); err != nil {
			net.Fail(err)
		}
		done = done && c.Done()
	}
	return done
}

// Index returns the index of the client with this id, or -1.
func (cs Workload[M]) Index(id []byte) int {
	for _, c := range cs {
		if string(c.ID) == string(id) {
			return c.Index
		}
	}
	return -1
}

// Pending counts the clients with an operation pending.
func (cs Workload[M]) Pending() int {
	n := 0
	for _, c := range cs {
		if c.Cur != nil {
			n++
		}
	}
	return n
}

// Overdue describes the first pending operation still pending at now more
// than bound ticks after the later of settled (when the faults stopped)
// and its call, or returns "".
func (cs Workload[M]) Overdue(now, settled, bound int64) string {
	for _, c := range cs {
		if c.Cur == nil {
			continue
		}
		if start := max(settled, c.Cur.Call); now > start+bound {
			return fmt.Sprintf("client %d request %d (%s) issued at tick %d still pending %d ticks after calm (tick %d); bound %d",
				c.Index, c.Cur.Number, c.Cur.Input, c.Cur.Call, now-settled, settled, bound)
		}
	}
	return ""
}

// History is the clients' completed operations, plus each one's pending
// operation (Source.Pending), for the linearizability check.
func (cs Workload[M]) History() []porcupine.Operation {
	var ops []porcupine.Operation
	for _, c := range cs {
		for _, o := range c.History {
			ops = append(ops, porcupine.Operation{ClientId: c.Index, Input: o.Input, Call: o.Call, Output: o.Output, Return: o.Ret})
		}
		if o := c.Cur; o != nil {
			ops = append(ops, c.source.Pending(c.Index, o.Input, o.Call))
		}
	}
	return ops
}
