package protocol

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/wire"
)

// DefaultFetchSlots bounds how many sequences one Fetch answer covers.
const DefaultFetchSlots = 128

// broadcastFetch asks every replica for what it has above this replica's
// last committed sequence.
func (r *Replica) broadcastFetch() {
	r.send(Broadcast, KindFetch, &wire.ReplicaMessage{
		Body: &wire.ReplicaMessage_Fetch{Fetch: &wire.Fetch{FromSequence: r.lastCommitted, View: r.view, ViewActive: r.viewActive}},
	})
	r.fetchesSent++
	r.lastFetch = r.ticks
}

// FetchSoon broadcasts a Fetch now unless this replica sent one in the
// last max(1, RetransmitTicks/4) ticks (the others would refuse to answer
// more often). The driver calls it when a state transfer's peers answer
// that they no longer hold its target: their answers carry the newer
// stable certificate sooner than the retransmission timer would ask.
func (r *Replica) FetchSoon() {
	if r.fetchesSent > 0 && r.ticks-r.lastFetch < uint64(max(1, r.cfg.RetransmitTicks/4)) {
		return
	}
	r.broadcastFetch()
}

// stepFetch answers a Fetch from replica from: its stable checkpoint
// certificate unless the sender is past this replica's window (see
// sendsStableCertificate), then this replica's share of the
// agreement on the sequences above the sender's (the accepted pre-prepare,
// which the primary signed, with its batch when it holds it, and its own
// prepare and commit), and its own checkpoint votes above the stable
// checkpoint. Each replica is answered at most once per RetransmitTicks/4
// ticks, and the batches it gets count against its serve budget
// (serve.go).
func (r *Replica) stepFetch(from uint32, f *wire.Fetch) error {
	if last, ok := r.fetchAnswered[from]; ok && r.ticks-last < uint64(max(1, r.cfg.RetransmitTicks/4)) {
		return ErrRateLimited
	}
	r.fetchAnswered[from] = r.ticks
	if (f.View < r.view || (f.View == r.view && !f.ViewActive)) && r.viewActive && r.lastNewView != nil {
		r.sendTo(from, KindNewView, r.lastNewView)
	}
	if stable := r.checkpoints.Stable(); r.sendsStableCertificate(f, stable) {
		votes := make([]*wire.Signed, 0, len(stable.Proof))
		for _, v := range stable.Proof {
			votes = append(votes, v.Signed)
		}
		r.send(from, KindCheckpointCertificate, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_CheckpointCertificate{
			CheckpointCertificate: &wire.CheckpointCertificate{Votes: votes},
		}})
	}
	var answered []uint64
	for seq := max(f.FromSequence, r.window.Low) + 1; seq <= r.window.High() && len(answered) < DefaultFetchSlots; seq++ {
		if s := r.slots[seq]; s != nil && s.view == r.view && (s.prePrepare != nil || s.committed) {
			answered = append(answered, seq)
		}
	}
	r.checkForRelay(answered)
	for _, seq := range answered {
		s := r.slots[seq]
		if s.prePrepare != nil && s.batch != nil {
			// Without its batch a pre-prepare frame fails verification.
			// Batches are charged to the asker's serve budget; beyond it
			// the votes still go, and the asker fetches the batches it
			// lacks by BATCH-REQUEST, within the same budget, later.
			if r.serve.takeBytes(from, r.ticks, batchBytes(s.batch)) {
				r.ready.Messages = append(r.ready.Messages, Outbound{To: from, Signed: s.prePrepare, Batch: s.batch, Kind: KindPrePrepare})
			} else {
				r.serveLimited++
			}
		}
		if v, ok := s.prepares[r.cfg.ID]; ok {
			r.sendTo(from, KindPrepare, v.signed)
		}
		// Every matching commit it holds, the others' too: signed, they
		// are forwardable, and a quorum of them is a commit certificate
		// the asker can act on even if this replica's own vote is missing.
		// A commit taken on its author's session's word is relayed only
		// once its signature is checked (checkForRelay): a correct
		// replica relays only what it verified.
		for _, id := range slices.Sorted(maps.Keys(s.commits)) {
			if v := s.commits[id]; v.digest == s.digest && !v.byChannel {
				r.sendTo(from, KindCommit, v.signed)
			}
		}
	}
	for _, seq := range slices.Sorted(maps.Keys(r.ownCheckpoints)) {
		if seq > max(f.FromSequence, r.window.Low) {
			r.sendTo(from, KindCheckpoint, r.ownCheckpoints[seq])
		}
	}
	return nil
}

// checkForRelay checks, in one call of Config.RelayCheck, the signatures
// of the matching commits taken on their authors' sessions' word in the
// slots seqs, which a Fetch answer is about to relay: a checked one is
// relayable from then on (byChannel cleared), a refused one never
// (unrelayable). Each vote is checked at most once however often it is
// asked for, and one call checks them all together.
func (r *Replica) checkForRelay(seqs []uint64) {
	if r.cfg.RelayCheck == nil {
		return
	}
	type voteRef struct {
		s  *slot
		id uint32
	}
	var refs []voteRef
	var signed []*wire.Signed
	for _, seq := range seqs {
		s := r.slots[seq]
		for _, id := range slices.Sorted(maps.Keys(s.commits)) {
			if v := s.commits[id]; v.byChannel && !v.unrelayable && v.digest == s.digest {
				refs = append(refs, voteRef{s, id})
				signed = append(signed, v.signed)
			}
		}
	}
	if len(refs) == 0 {
		return
	}
	ok := r.cfg.RelayCheck(signed)
	for i, ref := range refs {
		v := ref.s.commits[ref.id]
		if i < len(ok) && ok[i] {
			v.byChannel = false
		} else {
			v.unrelayable = true
			r.relayRefused++
		}
		ref.s.commits[ref.id] = v
	}
}

// sendsStableCertificate reports whether a Fetch answer carries the
// stable checkpoint certificate. A Fetch does not say which stable
// checkpoint the asker holds, only what it committed, and the votes of a
// stable checkpoint are never sent again once it is stable: an asker below
// it needs it for a state transfer, and one at or above it (it executed
// there by replaying its log, or got the commits but missed the votes)
// needs it to move its window past it. So the certificate goes to every
// asker that is not past this replica's window (one that is has nothing
// to learn here), at most once per Fetch rate period; an asker that holds
// it drops it as stale. Without this a replica whose window stopped below
// the others' stable checkpoint never moved it in an idle cluster.
func (r *Replica) sendsStableCertificate(f *wire.Fetch, stable checkpoint.Certificate) bool {
	return len(stable.Proof) > 0 && stable.Sequence == r.window.Low && f.FromSequence <= r.window.High()
}

func (r *Replica) sendTo(to uint32, kind Kind, signed *wire.Signed) {
	r.ready.Messages = append(r.ready.Messages, Outbound{To: to, Signed: signed, Kind: kind})
}

// stepCheckpointCertificate adopts a stable checkpoint proven by a quorum
// of signed votes. If this replica has executed that far the window moves;
// otherwise Ready.Behind asks the runtime for a state transfer.
func (r *Replica) stepCheckpointCertificate(votes []checkpoint.Vote) error {
	cert, err := checkpoint.VerifyCertificate(votes, r.cfg.N, r.quorum, r.cfg.CheckpointInterval)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpointRejected, err)
	}
	switch {
	case cert.Sequence <= r.window.Low:
		return ErrStale
	case r.transferring != nil && cert.Sequence <= r.transferring.Sequence:
		return ErrStale
	}
	if cert.Sequence > r.checkpoints.Stable().Sequence {
		r.checkpoints.Restore(cert)
	}
	if cert.Sequence <= r.lastCommitted {
		r.moveWindow(&cert)
		return nil
	}
	r.requestStateTransfer(&cert)
	return nil
}

// requestStateTransfer asks the runtime for the state certified by cert.
// Until InstallCheckpoint, nothing is delivered for execution.
func (r *Replica) requestStateTransfer(cert *checkpoint.Certificate) {
	r.transferring = cert
	r.ready.Behind = cert
}

// InstallCheckpoint tells the replica that the runtime installed the state
// certified by cert (fetched by state transfer and checked against
// cert.StateDigest). The replica continues from cert.Sequence and asks the
// others for the log above it.
func (r *Replica) InstallCheckpoint(cert checkpoint.Certificate) error {
	if r.isBaseCertificate(cert) && r.transferring != nil && r.transferring.Sequence >= cert.Sequence {
		// The state at the epoch's base (NeedBaseState): the configuration
		// certificate proved its digest; the window is already there. The
		// runtime may have kept fetching the base while the replica learned
		// a newer stable checkpoint (replica.Driver keeps a transfer's
		// target while it is served): the replica then continues from the
		// base and asks for what follows, as after any install.
		r.transferring = nil
		r.timerBase = r.ticks
		r.restartLivenessClocks()
		r.deliver()
		r.broadcastFetch()
		return nil
	}
	if _, err := checkpoint.VerifyCertificate(cert.Proof, r.cfg.N, r.quorum, r.cfg.CheckpointInterval); err != nil {
		return fmt.Errorf("protocol: install: %w", err)
	}
	if cert.Sequence <= r.lastCommitted {
		return fmt.Errorf("protocol: install checkpoint %d at or below the last committed %d: %w", cert.Sequence, r.lastCommitted, ErrStale)
	}
	if cert.Sequence > r.checkpoints.Stable().Sequence {
		r.checkpoints.Restore(cert)
	}
	// Requests ordered in the skipped sequences are settled by the state.
	for seq, s := range r.slots {
		if seq <= cert.Sequence && !s.committed {
			r.requests.committed(s.requests)
		}
	}
	r.transferring = nil
	r.timerBase = r.ticks
	r.restartLivenessClocks()
	r.lastCommitted = cert.Sequence
	r.nextSequence = max(r.nextSequence, cert.Sequence+1)
	r.moveWindow(&cert)
	r.deliver()
	r.broadcastFetch()
	return nil
}
