package protocol

import (
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/viewchange"
	"github.com/pbftnode/pbftnode/wire"
)

// Configuration epochs. Epoch e is one configuration of members in force
// from sequence Base+1 on; one Replica runs one epoch. Its replica IDs are
// positions in that epoch's configuration (the runtime maps positions to
// member indices and peers), views restart at 0, and the primary of view v
// is position (v + e) mod N, so that a member that led view 0 of one epoch
// does not lead view 0 of the next one too. Every message carries its
// epoch under its signature (wire.ReplicaMessage.epoch): a verifier refuses
// other epochs (ErrWrongEpoch), so a vote of one configuration never counts
// in another.
//
// The driver ends an epoch with EndAt(E) once it executed the change that
// starts the next one from E+1: the replica then proposes and prepares
// nothing above E (and fills up to E with empty batches when it leads), so
// that the checkpoint at E becomes stable and the next epoch can start
// there.

// ErrWrongEpoch: a message (or a message nested in a certificate) of
// another configuration epoch.
var ErrWrongEpoch = errors.New("message of another configuration epoch")

// ErrBeyondEpoch: a pre-prepare above the sequence at which this epoch
// ends (see EndAt); it is ignored, never prepared.
var ErrBeyondEpoch = errors.New("pre-prepare beyond the end of the epoch")

// primaryOf returns the primary of view among n replicas in epoch.
func primaryOf(epoch, view uint64, n int) uint32 {
	return viewchange.PrimaryIn(epoch, view, n)
}

// PrimaryIn returns the primary of view among n replicas in epoch: position
// (view + epoch) mod n. Primary(view, n) is PrimaryIn(0, view, n).
func PrimaryIn(epoch, view uint64, n int) uint32 { return primaryOf(epoch, view, n) }

// primary returns the primary of view in this replica's epoch.
func (r *Replica) primary(view uint64) uint32 { return primaryOf(r.cfg.Epoch, view, r.cfg.N) }

// Epoch returns the configuration epoch this replica runs.
func (r *Replica) Epoch() uint64 { return r.cfg.Epoch }

// Base returns the sequence this replica's epoch starts after (its first
// low watermark): 0 for the genesis epoch.
func (r *Replica) Base() uint64 { return r.cfg.Base }

// EndsAt returns the sequence set by EndAt (0: not set).
func (r *Replica) EndsAt() uint64 { return r.endAt }

// EndAt ends this epoch at end, a checkpoint sequence above the base: the
// replica proposes no pre-prepare above end, ignores (does not prepare) the
// pre-prepares above it that it receives or that a NEW-VIEW re-proposes,
// and, when it is the active primary, fills the sequences up to end with
// empty batches when it has no request to order, so that the checkpoint at
// end becomes stable without client traffic. Calling it again with the
// same end changes nothing; another end is refused.
func (r *Replica) EndAt(end uint64) error {
	switch {
	case end <= r.cfg.Base || end%r.cfg.CheckpointInterval != 0:
		return fmt.Errorf("protocol: end of epoch %d at %d: not a checkpoint above the base %d", r.cfg.Epoch, end, r.cfg.Base)
	case r.endAt != 0 && r.endAt != end:
		return fmt.Errorf("protocol: epoch %d already ends at %d, not %d", r.cfg.Epoch, r.endAt, end)
	}
	r.endAt = end
	return nil
}

// beyondEnd reports whether seq lies above the end of the epoch.
func (r *Replica) beyondEnd(seq uint64) bool { return r.endAt != 0 && seq > r.endAt }

// fillToEnd, on the active primary of an epoch that ends, proposes empty
// batches for the sequences up to the end when no request is queued, as
// far as the pipeline and the window allow.
func (r *Replica) fillToEnd() {
	for r.canFill() {
		r.proposeBatch(nil, nil, 0)
	}
}

// canFill reports whether fillToEnd would propose an empty batch now.
func (r *Replica) canFill() bool {
	return r.endAt != 0 && !r.adopting && r.viewActive && r.IsPrimary() && r.requests.queued() == 0 && r.transferring == nil &&
		r.nextSequence <= r.endAt && r.inFlight() < r.cfg.MaxInFlight && r.window.Contains(r.nextSequence)
}

// startAtBase sets up a replica of an epoch that starts after cfg.Base:
// the base is its stable checkpoint (proven by the previous epoch, so it
// carries no proof of this one) and everything up to it is settled.
func (r *Replica) startAtBase() {
	if r.cfg.Base == 0 {
		return
	}
	r.window.Low = r.cfg.Base
	r.lastCommitted = r.cfg.Base
	r.nextSequence = r.cfg.Base + 1
	r.highestPrepared = r.cfg.Base
	r.checkpoints.Restore(checkpoint.Certificate{Sequence: r.cfg.Base, StateDigest: r.cfg.BaseStateDigest})
}

// NeedBaseState tells a replica started at a base whose state the runtime
// does not hold (a joiner, with an empty executor) to fetch it: Ready.Behind
// then asks for the state at the base, whose digest the configuration
// certificate gave (Config.BaseStateDigest), from any member; nothing is
// delivered until InstallCheckpoint. A later stable checkpoint this replica
// learns of retargets the transfer as usual.
func (r *Replica) NeedBaseState() {
	if r.cfg.Base == 0 || r.transferring != nil {
		return
	}
	r.requestStateTransfer(&checkpoint.Certificate{Sequence: r.cfg.Base, StateDigest: r.cfg.BaseStateDigest})
}

// isBaseCertificate reports whether cert is the base of this epoch (no
// proof: the previous epoch certified it).
func (r *Replica) isBaseCertificate(cert checkpoint.Certificate) bool {
	return r.cfg.Base > 0 && cert.Sequence == r.cfg.Base && len(cert.Proof) == 0 && cert.StateDigest == r.cfg.BaseStateDigest
}

// WithEpoch returns v restricted to the messages of epoch: every other
// epoch's message, nested ones included, is refused with ErrWrongEpoch and
// counted (WrongEpoch). Call it before v is shared.
func (v *MessageVerifier) WithEpoch(epoch uint64) *MessageVerifier {
	v.epoch = epoch
	return v
}

// Epoch returns the epoch whose messages v accepts.
func (v *MessageVerifier) Epoch() uint64 { return v.epoch }

// WrongEpoch returns how many messages of another epoch v refused.
func (v *MessageVerifier) WrongEpoch() uint64 { return v.wrongEpoch.Load() }

// MessageEpoch returns the epoch an encoded replica message claims,
// unverified, for a runtime to route a frame or to notice a newer epoch.
func MessageEpoch(body *wire.ReplicaMessage) uint64 { return body.GetEpoch() }

func (v *MessageVerifier) checkEpoch(body *wire.ReplicaMessage) error {
	if body.Epoch != v.epoch {
		v.wrongEpoch.Add(1)
		return fmt.Errorf("%w: epoch %d, this replica runs %d", ErrWrongEpoch, body.Epoch, v.epoch)
	}
	return nil
}
