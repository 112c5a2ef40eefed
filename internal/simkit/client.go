package simkit

import (
	"fmt"
	"math/rand/v2"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/wire"
)

// keys are the small key space the clients work on.
var keys = []string{"x", "y", "z"}

// Op is one client operation and what became of it; M is how the
// simulator sends it (a signed frame, a request).
type Op[M any] struct {
	Number    uint64
	Input     kvmodel.Input
	Call, Ret int64
	Output    kvmodel.Output
	Msg       M
	// RetransmitAt is when the client sends to every replica; Attempts
	// counts those broadcasts.
	RetransmitAt int64
	Attempts     int
}

// Client is the workload of one simulated client: Total operations on a
// small key space, one at a time, each after a random think time,
// resent to every replica after a timeout that doubles up to 8x. The
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
	// known is the last value this client saw per key ("" = absent).
	known kvmodel.Known
}

// NewClient returns client index with identity id that issues total
// operations, the first not before tick thinkUntil.
func NewClient[M any](index int, id []byte, total int, thinkUntil int64) Client[M] {
	return Client[M]{Index: index, ID: id, total: total, thinkUntil: thinkUntil, known: kvmodel.Known{}}
}

// Done reports whether every operation completed.
func (c *Client[M]) Done() bool { return c.issued == c.total && c.Cur == nil }

// Tick is the client's tick at now: it reports whether a new operation
// is due (the caller then calls Issue), or resends the pending one to
// each of the n replicas through send when its timeout expired.
func (c *Client[M]) Tick(now int64, n int, timeout int64, send func(to uint32, m M)) (issue bool) {
	if c.Cur == nil {
		return c.issued < c.total && now >= c.thinkUntil
	}
	if now >= c.Cur.RetransmitAt {
		c.Cur.Attempts++
		for i := range n {
			send(uint32(i), c.Cur.Msg)
		}
		c.Cur.RetransmitAt = now + timeout<<min(c.Cur.Attempts, 3)
	}
	return false
}

// Issue draws the next operation from rng, has build encode it as a
// request numbered number, and makes it the pending one (first resent at
// now+timeout). It returns the operation and its encoding; a build error
// leaves no operation pending.
func (c *Client[M]) Issue(rng *rand.Rand, now, timeout int64, build func(number uint64, operation []byte) (M, error)) (*Op[M], []byte, error) {
	c.next++
	c.issued++
	in, encoded := kvmodel.NextInput(rng, keys[rng.IntN(len(keys))], fmt.Sprintf("c%d.%d", c.Index, c.next), c.known)
	m, err := build(c.next, encoded)
	if err != nil {
		return nil, nil, err
	}
	c.Cur = &Op[M]{Number: c.next, Input: in, Call: now, Msg: m, RetransmitAt: now + timeout}
	return c.Cur, encoded, nil
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
	o.Output = kvmodel.OutputOf(r.GetError(), r.GetResult())
	c.known.Record(o.Input, o.Output)
	c.History = append(c.History, o)
	c.Cur = nil
	c.thinkUntil = now + rng.Int64N(15)
}

// Workload is a simulator's clients, by index.
type Workload[M any] []*Client[M]

// Tick is every client's tick at now (Client.Tick), in index order: send
// resends a pending operation, issue(i) issues client i's next one. It
// reports whether every client is done.
func (cs Workload[M]) Tick(now int64, n int, timeout int64, send func(client int, to uint32, m M), issue func(client int)) (done bool) {
	done = true
	for _, c := range cs {
		resend := func(to uint32, m M) { send(c.Index, to, m) }
		if c.Tick(now, n, timeout, resend) {
			issue(c.Index)
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
// operation (kvmodel.Pending), for the linearizability check.
func (cs Workload[M]) History() []porcupine.Operation {
	var ops []porcupine.Operation
	for _, c := range cs {
		for _, o := range c.History {
			ops = append(ops, porcupine.Operation{ClientId: c.Index, Input: o.Input, Call: o.Call, Output: o.Output, Return: o.Ret})
		}
		if o := c.Cur; o != nil {
			ops = append(ops, kvmodel.Pending(c.Index, o.Input, o.Call))
		}
	}
	return ops
}
