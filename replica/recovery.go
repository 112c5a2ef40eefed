package replica

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// Recover loads what Storage holds into the core: the view, the stable
// checkpoint certificate, the executed sequence and the protocol log
// above the checkpoint. Everything read back is verified again, as if it
// came from the network. Call it once, before any other input; then call
// Process.
//
// On a first start (nothing stored) it stores view 0 instead, durably and
// before the core sends anything, so that every later start is a restart
// the core learns of through Restore: the primary may send PRE-PREPAREs
// and the backups PREPAREs before persisting them (Outbound.BeforePersist),
// and only a restored replica knows to abdicate or withhold its PREPAREs. (A stored view alone makes a restart: a
// primary that crashed between its early sends and its first persist has
// only its view stored, and must not propose those sequences afresh.)
func (d *Driver) Recover() error {
	if d.ep != nil {
		if err := d.recoverEpoch(); err != nil {
			return err
		}
		if !d.ep.member {
			return nil // no core to recover: it waits for a certificate that adds it
		}
	}
	if err := d.recoverCore(); err != nil {
		return err
	}
	d.resumeEpochEnd()
	return nil
}

// recoverCore is Recover for the core of the epoch in force.
func (d *Driver) recoverCore() error {
	rec := protocol.Recovered{Executed: d.exec.LastExecuted()}
	view, active, viewFound, err := d.store.LoadViewState()
	if err != nil {
		return fmt.Errorf("replica: recover view: %w", err)
	}
	rec.View, rec.ViewChanging = view, !active
	encoded, found, err := d.store.LoadStableCheckpoint()
	if err != nil {
		return fmt.Errorf("replica: recover stable checkpoint: %w", err)
	}
	from := uint64(0)
	if found {
		cert, err := d.decodeCertificate(encoded)
		switch {
		case errors.Is(err, protocol.ErrWrongEpoch) && d.cfg.Core.Base > 0:
			// The previous epoch's last stable checkpoint: this epoch's base.
			from = d.cfg.Core.Base + 1
		case err != nil:
			return fmt.Errorf("replica: recover stable checkpoint: %w", err)
		default:
			rec.Stable = &cert
			from = cert.Sequence + 1
		}
	}
	from = max(from, d.cfg.Core.Base+1)
	if err := d.recoverLog(&rec, from); err != nil {
		return err
	}
	if !viewFound && !found && len(rec.Log) == 0 && len(rec.Prepared) == 0 && rec.Executed == 0 {
		if err := d.store.SaveViewState(0, true); err != nil {
			return fmt.Errorf("replica: first start: %w", err)
		}
		return d.recoverSnapshots(nil)
	}
	if err := d.core.Restore(rec); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if err := d.recoverSnapshots(rec.Stable); err != nil {
		return err
	}
	if rec.Executed > 0 || len(rec.Log) > 0 {
		stable := uint64(0)
		if rec.Stable != nil {
			stable = rec.Stable.Sequence
		}
		d.log.Info("recovered", "view", rec.View, "executed", rec.Executed, "stable_checkpoint", stable, "log_entries", len(rec.Log))
	}
	return nil
}

// recoverSnapshots hands Snapshots the state of the stable checkpoint
// (nil: none yet) or of the epoch's base, if higher, and of every
// checkpoint above it the executor has
// executed, which the snapshots taken when they were executed, lost with
// the previous process, held: peers behind may need exactly those, and
// after a restart of the whole cluster no one else has them. The state at
// the executed sequence is the current one; an earlier one is rebuilt
// from the executor's rollback records (RollbackExecutor), which it then
// keeps recording. A state that cannot be rebuilt is logged and skipped:
// this replica then answers "unavailable" for it, as before.
func (d *Driver) recoverSnapshots(stable *checkpoint.Certificate) error {
	rb, canRollBack := d.exec.(RollbackExecutor)
	from := uint64(0)
	if stable != nil {
		from = stable.Sequence
	}
	if canRollBack {
		// Only checkpoints are ever rebuilt (below): one record per key
		// per checkpoint interval is enough (execution.SetRollbackInterval
		// says why that is safe).
		rb.SetRollbackInterval(d.core.CheckpointInterval())
		if err := rb.TrackRollback(from); err != nil {
			return fmt.Errorf("replica: recover: %w", err)
		}
	}
	// This epoch's base too: a joining replica fetches its state, and it is
	// no stable checkpoint of this epoch (the one stored is the previous
	// epoch's), so without it a cluster whose members all restarted after
	// the epoch began, before its first stable checkpoint, could not serve
	// a joiner, which a quorum may need.
	first := max(from, d.cfg.Core.Base)
	if first == 0 {
		return nil
	}
	executed, k := d.exec.LastExecuted(), d.core.CheckpointInterval()
	for seq := first; seq <= executed; seq = (seq/k + 1) * k {
		var snap *execution.StateSnapshot
		var err error
		switch {
		case seq == executed:
			snap, err = d.exec.TakeSnapshot()
		case canRollBack:
			snap, err = rb.SnapshotAt(seq)
		default:
			continue
		}
		if err != nil {
			d.log.Warn("recover: the state of a checkpoint cannot be served", "sequence", seq, "executed", executed, "err", err)
			continue
		}
		d.snaps.Checkpointed(snap)
	}
	return nil
}

// recoverLog verifies the stored log from sequence from on into rec.
func (d *Driver) recoverLog(rec *protocol.Recovered, from uint64) error {
	entries, err := d.store.LoadLog(from)
	if err != nil {
		return fmt.Errorf("replica: recover log: %w", err)
	}
	for _, e := range entries {
		if e.Kind == byte(protocol.KindPreparedCertificate) {
			var wc wire.PreparedCertificate
			if err := proto.Unmarshal(e.Signed, &wc); err != nil {
				return fmt.Errorf("replica: recover prepared certificate at %d: %w", e.Sequence, err)
			}
			pc, err := d.cfg.Verifier.PreparedCertificate(&wc)
			if errors.Is(err, protocol.ErrWrongEpoch) {
				continue // of an ended epoch (above its end, never executed)
			}
			if err != nil {
				return fmt.Errorf("replica: recover prepared certificate at %d: %w", e.Sequence, err)
			}
			rec.Prepared = append(rec.Prepared, pc)
			continue
		}
		m, err := d.cfg.Verifier.ReplicaFrame(e.Signed)
		if errors.Is(err, protocol.ErrWrongEpoch) {
			continue // of an ended epoch (above its end, never executed)
		}
		if err != nil {
			return fmt.Errorf("replica: recover log entry at sequence %d: %w", e.Sequence, err)
		}
		rec.Log = append(rec.Log, m)
	}
	return nil
}

// encodeCertificate encodes a stable checkpoint's proof for storage.
func encodeCertificate(cert *checkpoint.Certificate) ([]byte, error) {
	votes := make([]*wire.Signed, len(cert.Proof))
	for i, v := range cert.Proof {
		if v.Signed == nil {
			return nil, errors.New("replica: certificate vote without its signed message")
		}
		votes[i] = v.Signed
	}
	b, err := proto.Marshal(&wire.CheckpointCertificate{Votes: votes})
	if err != nil {
		return nil, fmt.Errorf("replica: encode certificate: %w", err)
	}
	return b, nil
}

// decodeCertificate decodes and verifies a stored certificate.
func (d *Driver) decodeCertificate(b []byte) (checkpoint.Certificate, error) {
	var wc wire.CheckpointCertificate
	if err := proto.Unmarshal(b, &wc); err != nil {
		return checkpoint.Certificate{}, fmt.Errorf("decode certificate: %w", err)
	}
	return d.cfg.Verifier.CheckpointCertificate(&wc, protocol.Quorum(d.cfg.Core.N), d.core.CheckpointInterval())
}
