package execution

import (
	"errors"
	"fmt"
)

// Tentative execution. A PBFT replica that prepared the batch at the next
// sequence, with its prepared certificate durable, may execute it before
// it commits and send tentative replies (docs/architecture.md,
// "Tentative replies"). ApplyTentative executes such a batch as Apply
// would but leaves it staged: the results are computed on the executed
// state and returned, and nothing is written. CommitTentative writes the
// staged batch once it committed (the same writes Apply would make), and
// DiscardTentative drops it (the batch did not commit at that sequence).
//
// While a batch is staged, the executor's state as every other method
// sees it is still the executed one: LastExecuted and StateDigest answer
// for it directly, Status, LastRequestNumber and CachedReply from the
// batch's undo log (executedWindow); every other call first discards the
// staged batch (the replica then executes it again at its commit). So a
// tentative result never reaches the reply cache, a checkpoint, a read
// or a state transfer before its batch commits.

var (
	// ErrTentativeUnsupported is returned by ApplyTentative for a batch
	// the executor cannot execute without applying it: the application
	// is not a BatchApplication (its Execute changes its state at once) or
	// runs batches in another process (BatchRunner), or the batch
	// carries a configuration change, or a state transfer is under way.
	ErrTentativeUnsupported = errors.New("executor: batch cannot execute tentatively")
	// ErrNoTentative is returned by CommitTentative when no batch is
	// staged at that sequence.
	ErrNoTentative = errors.New("executor: no tentative batch at that sequence")
)

// tentativeBatch is the batch ApplyTentative staged.
type tentativeBatch struct {
	sequence uint64
	replies  []Reply
	cacheAcc adHash
	// digest is StateDigest before the batch.
	digest [32]byte
}

// ApplyTentative executes the batch at sequence, which must be
// LastExecuted()+1, and returns its replies, as Apply does, but leaves
// the batch staged instead of writing it (see the top of this file). A
// batch already staged is discarded first. ErrTentativeUnsupported when
// the batch cannot execute that way; any other error leaves the state
// unchanged, as Apply's do.
func (e *Executor) ApplyTentative(sequence uint64, requests []Request) ([]Reply, error) {
	e.settle()
	if e.batchApp == nil || e.batchRunner != nil || e.restore != nil {
		return nil, ErrTentativeUnsupported
	}
	for _, req := range requests {
		if req.ConfigChange != nil {
			return nil, ErrTentativeUnsupported
		}
	}
	digest := e.StateDigest()
	replies, cacheAcc, err := e.stage(sequence, requests)
	if err != nil {
		return nil, err
	}
	e.tentative = &tentativeBatch{sequence: sequence, replies: replies, cacheAcc: cacheAcc, digest: digest}
	return replies, nil
}

// TentativeSequence returns the sequence of the staged tentative batch,
// if one is staged.
func (e *Executor) TentativeSequence() (uint64, bool) {
	if e.tentative == nil {
		return 0, false
	}
	return e.tentative.sequence, true
}

// CommitTentative writes the batch ApplyTentative staged at sequence,
// which committed with the same requests, and returns its replies (those
// ApplyTentative returned): afterwards the state is what Apply of that
// batch would have made it. ErrNoTentative when no batch is staged at
// sequence (it was discarded: the caller applies the batch instead).
func (e *Executor) CommitTentative(sequence uint64) ([]Reply, error) {
	t := e.tentative
	if t == nil || t.sequence != sequence {
		return nil, fmt.Errorf("executor: commit tentative %d: %w", sequence, ErrNoTentative)
	}
	e.tentative = nil
	if err := e.writeStaged(sequence, t.cacheAcc); err != nil {
		return nil, err
	}
	return t.replies, nil
}

// DiscardTentative drops the staged tentative batch, if any: the state is
// as before ApplyTentative.
func (e *Executor) DiscardTentative() { e.settle() }

// settle discards the staged tentative batch, if any.
func (e *Executor) settle() {
	if e.tentative != nil {
		e.tentative = nil
		e.unstage()
	}
}

// executedWindow is the executed state's view of a client's window
// while a tentative batch is staged (its changes are made in place): a
// window the batch changed is answered from the batch's undo log
// (windowBefore reports a window the batch created as none, and
// discards the staged batch when it evicted windows: rare, and the answer
// would need the evicted windows back).
type executedWindow struct {
	e       *Executor
	w       *clientWindow
	changed bool   // the staged batch changed w
	high    uint64 // H before the batch
}

// windowBefore returns clientID's window as the executed state has it.
func (e *Executor) windowBefore(clientID []byte) (executedWindow, bool) {
	if e.tentative != nil && len(e.evicted) > 0 {
		e.settle()
	}
	w := e.clients[string(clientID)]
	if w == nil {
		return executedWindow{}, false
	}
	if e.tentative == nil || !w.touched {
		return executedWindow{e: e, w: w, high: w.high}, true
	}
	for _, t := range e.touched {
		if t.w == w {
			if t.created {
				return executedWindow{}, false
			}
			return executedWindow{e: e, w: w, changed: true, high: t.prevHigh}, true
		}
	}
	panic("execution: a touched window is not in the batch log")
}

// entry returns entry n as the executed state has it.
func (x executedWindow) entry(n uint64) (windowEntry, bool) {
	if x.changed {
		// The first change the batch made to entry n says what it was.
		for _, c := range x.e.undo {
			if c.w == x.w && c.n == n {
				return c.old, c.had
			}
		}
	}
	entry, ok := x.w.entries[n]
	return entry, ok
}

// status is clientWindow.status on the executed state.
func (x executedWindow) status(n uint64) RequestStatus {
	if belowWindow(x.high, n) {
		return RequestTooOld
	}
	if _, ok := x.entry(n); ok {
		return RequestExecuted
	}
	return RequestNew
}
