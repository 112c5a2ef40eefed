package protocol

import (
	"fmt"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/viewchange"
)

// Recovered is what a restarted replica's storage holds: the view, the
// stable checkpoint with its certificate, the last sequence the executor
// applied, and the protocol log above the stable checkpoint (accepted
// pre-prepares and this replica's own prepares, commits and checkpoint
// votes, re-verified by the runtime).
type Recovered struct {
	View uint64
	// ViewChanging: the replica had sent its VIEW-CHANGE for View but not
	// entered it; it resumes the change (and sends the VIEW-CHANGE again).
	ViewChanging bool
	Stable       *checkpoint.Certificate
	Executed     uint64
	Log          []VerifiedMessage
	// Prepared are the prepared certificates this replica assembled
	// (signatures re-verified); its VIEW-CHANGEs must still carry them.
	Prepared []viewchange.PreparedCertificate
}

// Restore loads a restarted replica's state. Call it once, right after
// New and before any other input, whenever the replica's storage shows it
// ran before (a first start with empty storage skips it). The replica
// never contradicts what its log says it sent: a restored prepare or
// commit stands. It then asks the others for what it missed (a Fetch in
// Ready).
//
// A replica that leads the view it restored abdicates: it moves to the
// next view at once and asks the others to follow (see abdicate). It
// never proposes again in the restored view, so a PRE-PREPARE or NEW-VIEW
// it sent there but had not persisted when it crashed cannot be
// contradicted. A backup sends no new PREPARE in the restored view for
// the sequences it may have prepared early (see prepare), for the same
// reason. That is what lets the runtime send the
// primary's PRE-PREPAREs and the backups' PREPAREs before persisting them
// (Outbound.BeforePersist).
func (r *Replica) Restore(rec Recovered) error {
	if r.lastCommitted != r.cfg.Base || len(r.slots) != 0 {
		return fmt.Errorf("protocol: restore into a replica that already ran")
	}
	r.view = rec.View
	// A replica of an epoch that starts after its base never goes below
	// it; one whose executor is below the base (a joiner that has not
	// fetched the base state yet) fetches it.
	r.lastCommitted = max(rec.Executed, r.cfg.Base)
	needBase := rec.Executed < r.cfg.Base
	// The low watermark is always the stable checkpoint the tracker holds:
	// answers to Fetch and certificate checks rely on the two agreeing.
	if rec.Stable != nil && rec.Stable.Sequence > r.cfg.Base {
		cert, err := checkpoint.VerifyCertificate(rec.Stable.Proof, r.cfg.N, r.quorum, r.cfg.CheckpointInterval)
		if err != nil {
			return fmt.Errorf("protocol: restore: stored certificate: %w", err)
		}
		r.checkpoints.Restore(cert)
		r.window.Low = cert.Sequence
		if rec.Executed < cert.Sequence {
			// The executor's (unsynced) state is older than the stable
			// checkpoint: fetch the certified state.
			r.requestStateTransfer(&cert)
			needBase = false
		}
	}
	if needBase {
		r.NeedBaseState()
	}
	r.nextSequence = r.lastCommitted + 1
	for _, m := range rec.Log {
		if err := r.restoreEntry(m); err != nil {
			return err
		}
	}
	for _, pc := range rec.Prepared {
		seq := pc.PrePrepare.Sequence
		if seq <= r.checkpoints.Stable().Sequence {
			continue
		}
		if err := r.vcConfig.ValidatePreparedCertificate(pc); err != nil {
			return fmt.Errorf("protocol: restore: logged prepared certificate: %w", err)
		}
		if prev, ok := r.prepared[seq]; !ok || prev.PrePrepare.View < pc.PrePrepare.View {
			r.prepared[seq] = pc
		}
		r.highestPrepared = max(r.highestPrepared, seq)
	}
	r.early.restore(r.view, r.window.Low)
	switch {
	case r.IsPrimary():
		r.viewActive = !rec.ViewChanging
		r.abdicate()
	case rec.ViewChanging && r.view > 0:
		r.viewActive = false
		r.sendViewChange()
	}
	r.broadcastFetch()
	return nil
}

func (r *Replica) restoreEntry(m VerifiedMessage) error {
	body := m.Body
	if body == nil {
		return fmt.Errorf("protocol: restore: %w", ErrMalformed)
	}
	switch {
	case body.GetPrePrepare() != nil:
		pp := body.GetPrePrepare()
		if pp.Sequence <= r.window.Low || len(m.Batch) != len(m.Requests) {
			return nil
		}
		// Every logged batch is retained, those of older views too: a
		// NEW-VIEW may re-propose it (see retainBatch). Its digest is
		// recomputed, so the batch is kept under the digest it has.
		r.retainBatch(pp.Sequence, crypto.BatchDigest(m.Batch), m.Batch, m.Requests)
		if pp.View != r.view {
			return nil
		}
		if body.From != r.primary(pp.View) {
			return fmt.Errorf("protocol: restore: logged pre-prepare %d not from the primary", pp.Sequence)
		}
		s := r.slot(pp.Sequence)
		s.prePrepare, s.digest, s.batch, s.requests = m.Signed, crypto.BatchDigest(m.Batch), m.Batch, m.Requests
		r.nextSequence = max(r.nextSequence, pp.Sequence+1)
		if pp.Sequence <= r.lastCommitted {
			// Executed: never delivered again. Prepared only if the log
			// holds this replica's commit (below); otherwise it prepares
			// and commits again when the others' prepares come, which
			// they may need.
			s.committed = true
		} else {
			r.requests.ordered(m.Batch, m.Requests)
		}
	case body.From != r.cfg.ID:
		return nil // only this replica's own votes are logged
	case body.GetPrepare() != nil:
		p := body.GetPrepare()
		if p.View != r.view || p.Sequence <= r.window.Low {
			return nil
		}
		var d crypto.Digest
		copy(d[:], p.Digest)
		r.slot(p.Sequence).prepares[r.cfg.ID] = vote{digest: d, signed: m.Signed}
	case body.GetCommit() != nil:
		c := body.GetCommit()
		if c.View != r.view || c.Sequence <= r.window.Low {
			return nil
		}
		var d crypto.Digest
		copy(d[:], c.Digest)
		s := r.slot(c.Sequence)
		s.commits[r.cfg.ID] = vote{digest: d, signed: m.Signed}
		r.early.noteCommit(c.View, c.Sequence)
		// A replica commits only once prepared, and logs the pre-prepare
		// before its commit.
		s.prepared = s.prePrepare != nil && s.digest == d
	case body.GetCheckpoint() != nil:
		cp := body.GetCheckpoint()
		if cp.Sequence <= r.checkpoints.Stable().Sequence {
			return nil
		}
		v := checkpoint.Vote{Replica: r.cfg.ID, Sequence: cp.Sequence, Signed: m.Signed}
		copy(v.StateDigest[:], cp.StateDigest)
		if _, err := r.checkpoints.Add(v); err == nil {
			r.ownCheckpoints[cp.Sequence] = m.Signed
		}
	}
	return nil
}
