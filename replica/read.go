package replica

import (
	"errors"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/wire"
)

// Read-only path limits.
const (
	// MaxPendingReads bounds the read-only requests waiting for execution
	// to catch up; a read beyond it is answered with an error at once.
	MaxPendingReads = 4096
	// ReadWaitTicks is how many ticks a read-only request waits for
	// execution to catch up before it is answered with an error (the
	// client orders it instead).
	ReadWaitTicks = 20
)

// ErrReadsFull is returned by Read when MaxPendingReads reads wait.
var ErrReadsFull = errors.New("replica: too many pending reads")

// Refusals of the read-only path, sent as Reply.error with read_only set;
// the client orders the request instead.
const (
	readNotReady    = "read-only: replica not ready (changing view or transferring state)"
	readNotReadOnly = "read-only: not a read-only operation"
	readTimedOut    = "read-only: execution did not catch up"
	readBusy        = "read-only: too many pending reads"
)

// pendingRead is a read-only request waiting until the executor reached
// after, the core's HighestPrepared when it arrived.
type pendingRead struct {
	req   *wire.Request
	after uint64
	age   int // ticks waited
}

// readQueue holds the pending reads in arrival order (after never
// decreases along it: HighestPrepared only grows).
type readQueue struct {
	pending []pendingRead
}

// Read answers a read-only request (wire.Request.read_only) on the
// current state, without ordering it: it must come from its client's own
// authenticated stream (the caller checked that; no signature is needed
// and it is never relayed). The answer (Reply.read_only set) waits until
// the executor executed every sequence this replica had prepared when the
// read arrived (protocol.Replica.HighestPrepared): an operation that
// completed before the read was sent was prepared at a quorum (2f+1
// tentative replies, or f+1 committed ones, which mean 2f+1 COMMITs),
// which shares a correct replica with any 2f+1 answering ones, and that
// replica answers only after executing it (a tentative execution is not
// one: tentative.go). So 2f+1 matching answers are linearizable. While
// the replica changes views or transfers state, or when the application
// does not classify the operation as read-only, the answer is an error
// (the client orders the operation instead).
// ErrReadsFull when MaxPendingReads reads wait (answered with an error).
func (d *Driver) Read(req *wire.Request) error {
	if !d.core.ViewActive() || d.fetcher.Active() {
		d.readReply(req, nil, readNotReady)
		return nil
	}
	after := d.core.HighestPrepared()
	if d.exec.LastExecuted() >= after && len(d.reads.pending) == 0 {
		d.answerRead(req)
		return nil
	}
	if len(d.reads.pending) >= MaxPendingReads {
		d.readReply(req, nil, readBusy)
		return ErrReadsFull
	}
	d.reads.pending = append(d.reads.pending, pendingRead{req: req, after: after})
	return nil
}

// PendingReads returns how many read-only requests wait for execution.
func (d *Driver) PendingReads() int { return len(d.reads.pending) }

// answerReads answers the pending reads the executor caught up with.
func (d *Driver) answerReads() {
	if len(d.reads.pending) == 0 {
		return
	}
	executed := d.exec.LastExecuted()
	n := 0
	for n < len(d.reads.pending) && d.reads.pending[n].after <= executed {
		d.answerRead(d.reads.pending[n].req)
		n++
	}
	d.dropReads(n)
}

// readsTick ages the pending reads: on a view change or state transfer
// all, else those that waited ReadWaitTicks, are answered with an error.
func (d *Driver) readsTick() {
	if len(d.reads.pending) == 0 {
		return
	}
	notReady := !d.core.ViewActive() || d.fetcher.Active()
	n := 0
	for i := range d.reads.pending {
		p := &d.reads.pending[i]
		p.age++
		if notReady || (n == i && p.age >= ReadWaitTicks) {
			msg := readTimedOut
			if notReady {
				msg = readNotReady
			}
			d.readReply(p.req, nil, msg)
			n++
		}
	}
	d.dropReads(n)
}

// dropReads removes the first n pending reads.
func (d *Driver) dropReads(n int) {
	if n == 0 {
		return
	}
	rest := copy(d.reads.pending, d.reads.pending[n:])
	clear(d.reads.pending[rest:])
	d.reads.pending = d.reads.pending[:rest]
}

// answerRead executes a read on the current state and replies.
func (d *Driver) answerRead(req *wire.Request) {
	result, err := d.exec.Read(req.ClientId, req.Operation)
	switch {
	case errors.Is(err, execution.ErrNotReadOnly):
		d.readReply(req, nil, readNotReadOnly)
	case err != nil:
		d.log.Warn("read-only request", "err", err)
		d.readReply(req, nil, "read-only: "+err.Error())
	default:
		d.readReply(req, result, "")
	}
}

// readReply sends a read-only answer (or refusal) through the Filter.
func (d *Driver) readReply(req *wire.Request, result []byte, refusal string) {
	d.sendReply(&wire.Reply{View: d.core.View(), ClientId: req.ClientId, RequestNumber: req.RequestNumber,
		Result: result, Error: refusal, ReadOnly: true})
}
