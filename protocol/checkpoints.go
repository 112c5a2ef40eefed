package protocol

import (
	"fmt"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/wire"
)

// CheckpointExecuted tells the replica that the runtime executed every
// batch up to seq, a multiple of the checkpoint interval, and that the
// state digest (application state and reply cache) is then stateDigest.
// The replica signs and broadcasts CHECKPOINT(seq, stateDigest).
func (r *Replica) CheckpointExecuted(seq uint64, stateDigest [32]byte) error {
	if seq == 0 || seq%r.cfg.CheckpointInterval != 0 || seq > r.lastCommitted {
		return fmt.Errorf("protocol: checkpoint at %d (interval %d, committed %d): %w",
			seq, r.cfg.CheckpointInterval, r.lastCommitted, ErrCheckpointRejected)
	}
	if seq <= r.window.Low {
		return nil // already stable through the others' votes
	}
	cp := &wire.Checkpoint{Sequence: seq, StateDigest: stateDigest[:]}
	out := r.send(Broadcast, KindCheckpoint, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Checkpoint{Checkpoint: cp}})
	r.persist(r.view, seq, KindCheckpoint, out)
	r.ownCheckpoints[seq] = out
	return r.addCheckpointVote(checkpoint.Vote{Replica: r.cfg.ID, Sequence: seq, StateDigest: stateDigest, Signed: out})
}

func (r *Replica) stepCheckpoint(from uint32, cp *wire.Checkpoint, signed *wire.Signed) error {
	var d [32]byte
	if len(cp.StateDigest) != len(d) {
		return ErrMalformed
	}
	copy(d[:], cp.StateDigest)
	return r.addCheckpointVote(checkpoint.Vote{Replica: from, Sequence: cp.Sequence, StateDigest: d, Signed: signed})
}

func (r *Replica) addCheckpointVote(v checkpoint.Vote) error {
	cert, err := r.checkpoints.Add(v)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpointRejected, err)
	}
	if cert == nil {
		return nil
	}
	if cert.Sequence > r.lastCommitted {
		// A quorum is past this replica. If it has the log to get there,
		// deliver moves the window when it does; if not, its next Fetch
		// brings the certificate that starts a state transfer.
		return nil
	}
	r.moveWindow(cert)
	return nil
}

// moveWindow makes cert the stable checkpoint: the low watermark moves to
// it and every slot at or below it is garbage-collected.
func (r *Replica) moveWindow(cert *checkpoint.Certificate) {
	r.window.Low = cert.Sequence
	for seq := range r.slots {
		if seq <= cert.Sequence {
			delete(r.slots, seq)
		}
	}
	for seq := range r.ownCheckpoints {
		if seq <= cert.Sequence {
			delete(r.ownCheckpoints, seq)
		}
	}
	for seq := range r.prepared {
		if seq <= cert.Sequence {
			delete(r.prepared, seq)
		}
	}
	r.releaseBatches(cert.Sequence)
	r.noteProgress()
	r.ready.StableCheckpoint = cert
	r.replayFuture()
	r.propose() // the window has room again
}

// StableCheckpoint returns the latest stable checkpoint certificate.
func (r *Replica) StableCheckpoint() checkpoint.Certificate { return r.checkpoints.Stable() }
