package replica

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// Tentative replies (PBFT's tentative execution, Castro and Liskov). A
// replica that prepared the batch at the next sequence to execute, and
// made its prepared certificate durable (the Ready that sends its COMMIT
// appends durably), executes the batch at once without applying it
// (TentativeExecutor.ApplyTentative) and answers the requests that accept
// it (wire.Request.tentative, without a receipt) with tentative replies:
// Reply.tentative set, the view it prepared in and the sequence. A
// client accepts 2f+1 matching replies of one view and sequence: at least
// f+1 of them come from correct replicas that hold a durable prepared
// certificate for the batch there, so every later view keeps it at that
// sequence, and its result is the one computed on the state below it.
// That saves the client the COMMIT round.
//
// When the batch commits with the same digest, the staged execution is
// written (CommitTentative) and the requests answered tentatively get no
// second reply, unless the batch committed in another view than the one
// the replies named (they then get committed replies, which the client
// counts on their own). When another batch commits at that sequence, or
// anything else touched the executor meanwhile (a read, a snapshot, a
// question about one of the batch's clients), the staged execution is
// gone and the committed batch is applied as usual.
//
// Only one batch is tentative at a time: the next one needs this one
// executed. Reads are unaffected: a read waits until the executor
// executed every sequence the replica prepared (Read), and a staged batch
// is not executed.

// TentativeExecutor is an optional side of an Executor, found by type
// assertion (*execution.Executor implements it): the executor can run a
// batch without applying it (see the package execution's tentative
// execution).
type TentativeExecutor interface {
	// ApplyTentative executes the batch at LastExecuted()+1 and stages
	// it; execution.ErrTentativeUnsupported when it cannot.
	ApplyTentative(sequence uint64, requests []execution.Request) ([]execution.Reply, error)
	// CommitTentative writes the staged batch at sequence;
	// execution.ErrNoTentative when none is staged there.
	CommitTentative(sequence uint64) ([]execution.Reply, error)
	// DiscardTentative drops the staged batch, if any.
	DiscardTentative()
}

// TentativeCounts counts the driver's tentative executions.
type TentativeCounts struct {
	// Executed batches were executed tentatively (and answered).
	Executed uint64
	// Committed of them were written when they committed, without a
	// second execution.
	Committed uint64
	// Discarded of them were executed again (or another batch instead)
	// at the commit: something touched the executor meanwhile, or the
	// batch did not commit at that sequence.
	Discarded uint64
}

// tentativeState is the batch the driver executed tentatively.
type tentativeState struct {
	view, sequence uint64
	digest         crypto.Digest
	// answered marks the replies sent tentatively, by reply index.
	answered []bool
}

// wantsTentative reports whether req accepts a tentative reply: it asks
// for one and no receipt (receipts are signed for committed batches
// only).
func wantsTentative(req *wire.Request) bool {
	return req.GetTentative() && !req.GetReceipt()
}

// TentativeCounts returns the counts of tentative executions.
func (d *Driver) TentativeCounts() TentativeCounts { return d.tentCounts }

// executeTentative executes tentatively the batch of rd.Prepared at the
// next sequence to execute, if the Executor can and one of its requests
// accepts a tentative reply, and sends those replies. Called after rd's
// log is durable and its COMMITs sent.
func (d *Driver) executeTentative(rd *protocol.Ready) {
	te, ok := d.exec.(TentativeExecutor)
	if !ok || d.cfg.CommittedRepliesOnly || len(rd.Prepared) == 0 || d.inactive() || d.fetcher.Active() {
		return
	}
	next := d.exec.LastExecuted() + 1
	i := slices.IndexFunc(rd.Prepared, func(b protocol.CommittedBatch) bool { return b.Sequence == next })
	if i < 0 {
		return
	}
	b := rd.Prepared[i]
	if d.beyondEnd(b.Sequence) || !slices.ContainsFunc(b.Requests, wantsTentative) {
		return
	}
	replies, err := te.ApplyTentative(b.Sequence, executionRequests(b))
	if err != nil {
		if !errors.Is(err, execution.ErrTentativeUnsupported) {
			d.log.Warn("tentative execution", "sequence", b.Sequence, "err", err)
		}
		return
	}
	if d.tent != nil {
		d.tentCounts.Discarded++ // the earlier staged execution (another view's), which ApplyTentative dropped
	}
	d.tentCounts.Executed++
	answered := repliesWhose(b.Requests, replies, wantsTentative)
	d.tent = &tentativeState{view: b.View, sequence: b.Sequence, digest: b.Digest, answered: answered}
	for i := range replies {
		if answered[i] {
			r := &replies[i]
			d.sendReply(&wire.Reply{View: b.View, ClientId: r.ClientID, RequestNumber: r.RequestNumber,
				Result: r.Result, Sequence: b.Sequence, Tentative: true})
		}
	}
}

// applyCommitted applies the committed batch b: it writes the tentative
// execution of b if one is staged, else applies b. answered marks the
// replies already sent tentatively for b in its view (nil when none):
// executed again on the same state, b gives the
// same results, so a batch whose staged execution was discarded
// meanwhile is not answered twice either.
func (d *Driver) applyCommitted(b protocol.CommittedBatch) (replies []execution.Reply, answered []bool, err error) {
	t := d.tent
	d.tent = nil
	same := t != nil && t.sequence == b.Sequence && t.digest == b.Digest
	if same && t.view == b.View {
		answered = t.answered
	}
	if t != nil {
		te := d.exec.(TentativeExecutor) // d.tent is set only for one
		if same {
			replies, err := te.CommitTentative(b.Sequence)
			if err == nil {
				d.tentCounts.Committed++
				return replies, answered, nil
			}
			if !errors.Is(err, execution.ErrNoTentative) {
				return nil, nil, fmt.Errorf("replica: apply %d: %w", b.Sequence, err)
			}
		}
		te.DiscardTentative()
		d.tentCounts.Discarded++
	}
	replies, err = d.exec.Apply(b.Sequence, executionRequests(b))
	if err != nil {
		return nil, nil, fmt.Errorf("replica: apply %d: %w", b.Sequence, err)
	}
	if len(answered) != len(replies) {
		answered = nil // not the same execution after all: answer every request
	}
	return replies, answered, nil
}

// executionRequests converts a batch's requests for the Executor.
func executionRequests(b protocol.CommittedBatch) []execution.Request {
	reqs := make([]execution.Request, len(b.Requests))
	for i, r := range b.Requests {
		reqs[i] = execution.Request{ClientID: r.ClientId, RequestNumber: r.RequestNumber, Operation: r.Operation, ConfigChange: r.ConfigChange}
	}
	return reqs
}
