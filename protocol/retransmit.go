package protocol

import (
	"maps"
	"slices"
)

// DefaultRetransmitTicks is how many ticks without progress pass before a
// replica resends its share of unfinished agreement.
const DefaultRetransmitTicks = 150

// noteProgress resets the retransmission timer.
func (r *Replica) noteProgress() { r.idleTicks = 0 }

// retransmitTick counts ticks without progress. After RetransmitTicks of
// them, a replica with agreement still open resends its part of it (the
// primary's pre-prepares and every prepare and commit it sent for
// sequences not yet committed, and its checkpoint votes above the stable
// checkpoint), and every replica broadcasts a Fetch in case the others
// are ahead. Streams lose messages when connections break; this is what
// makes the protocol live anyway. Receivers drop the copies they already
// have, so resending is always safe.
func (r *Replica) retransmitTick() {
	r.idleTicks++
	if r.idleTicks < r.cfg.RetransmitTicks {
		return
	}
	r.idleTicks = 0
	if r.unfinished() {
		r.retransmit()
	}
	if !r.viewActive && r.ownViewChange != nil {
		r.sendTo(Broadcast, KindViewChange, r.ownViewChange)
	}
	// Whether or not agreement is open here, others may be ahead: ask.
	// Replicas answer only when they have something above this one.
	r.broadcastFetch()
	r.reRequestBatches()
}

// maxBatchReRequests bounds the BATCH-REQUESTs one retransmission sends.
const maxBatchReRequests = 16

// reRequestBatches asks again for the batches of slots that wait for
// theirs (committed, or re-proposed in this view): the first request may
// have been lost, or refused by a serve budget.
func (r *Replica) reRequestBatches() {
	sent := 0
	for seq := r.lastCommitted + 1; seq <= r.window.High() && sent < maxBatchReRequests; seq++ {
		s := r.slots[seq]
		if s == nil || s.batch != nil || !(s.committed || (s.prePrepare != nil && s.view == r.view)) {
			continue
		}
		r.requestBatch(s.digest)
		sent++
	}
}

func (r *Replica) retransmit() {
	r.retransmissions++
	for seq := r.lastCommitted + 1; seq <= r.window.High(); seq++ {
		s := r.slots[seq]
		if s == nil || s.view != r.view {
			continue
		}
		if s.prePrepare != nil && s.batch != nil && r.IsPrimary() {
			r.ready.Messages = append(r.ready.Messages, Outbound{To: Broadcast, Signed: s.prePrepare, Batch: s.batch, Kind: KindPrePrepare})
		}
		if v, ok := s.prepares[r.cfg.ID]; ok {
			r.sendTo(Broadcast, KindPrepare, v.signed)
		}
		if v, ok := s.commits[r.cfg.ID]; ok {
			r.sendTo(Broadcast, KindCommit, v.signed)
		}
	}
	for _, seq := range slices.Sorted(maps.Keys(r.ownCheckpoints)) {
		if seq > r.window.Low {
			r.sendTo(Broadcast, KindCheckpoint, r.ownCheckpoints[seq])
		}
	}
}

// unfinished reports whether some agreement this replica takes part in is
// still open: uncommitted slots, or checkpoint votes not yet stable.
func (r *Replica) unfinished() bool {
	if len(r.ownCheckpoints) > 0 {
		return true
	}
	for seq, s := range r.slots {
		if seq > r.lastCommitted && s.prePrepare != nil {
			return true
		}
	}
	return false
}
