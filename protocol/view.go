package protocol

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/viewchange"
	"github.com/pbftnode/pbftnode/wire"
)

// DefaultViewChangeTimeoutTicks is how long a backup waits for a pending
// request before it suspects the primary (and the first wait for a
// NEW-VIEW); it doubles on each consecutive view change without progress.
const DefaultViewChangeTimeoutTicks = 100

// maxTimeoutDoublings caps the view-change timeout at 64x the base.
const maxTimeoutDoublings = 6

// viewTimeout is the current view-change timeout in ticks.
func (r *Replica) viewTimeout() int {
	return r.cfg.ViewChangeTimeoutTicks << min(r.vcAttempts, maxTimeoutDoublings)
}

// viewChangeTick runs the view-change timer: a backup with requests that
// clients sent it pending suspects the primary when none executes within
// the timeout; a replica changing views suspects the next primary when no
// NEW-VIEW comes. Suspecting broadcasts a Suspect; the replica changes
// views once f+1 replicas suspect (see stepSuspect). A replica busy with a
// state transfer is behind, not a judge of the primary.
func (r *Replica) viewChangeTick() {
	if r.transferring != nil {
		r.vcTimer = 0
		return
	}
	if !r.viewActive {
		r.vcTimer++
		if r.vcTimer >= r.viewTimeout() {
			r.vcTimer = 0
			r.suspect(r.view + 1)
		}
		return
	}
	if r.early.withheld > 0 && r.early.withholds(r.view, r.lastCommitted+1) {
		// A restarted replica sends no PREPARE for the sequences it may
		// have prepared before the crash (see prepare), which weakens the
		// view until they commit: it keeps asking for the next view,
		// which the others join only if the view fails them too (f+1
		// Suspects), as when a faulty replica is silent as well.
		r.suspectOnce("withholding_prepares", "withheld", r.early.withheld)
		return
	}
	// Active: the request at the head of this backup's FIFO of requests
	// clients sent it must execute within the timeout from when it became
	// the head (or this view, or a state transfer, started), plus the
	// credit the primary earns by ordering bytes meanwhile (see
	// liveness.go). Ordering others does not reset it: a primary that
	// lets a request wait is suspected even if it orders others.
	if waited, stalled := r.stalled(); stalled {
		r.suspectOnce("stalled_primary", "waited_ticks", waited, "reference_gap_ticks", r.monitor.stall.refGap)
		return
	}
	if r.monitorTick() {
		m := &r.monitor
		r.suspectOnce("slow_primary", "reference_requests", m.refReqs, "reference_bytes", m.refBytes)
		return
	}
	head, pending := r.requests.oldestFromClient()
	if r.IsPrimary() || !pending {
		r.head.running = false
		return
	}
	if r.headOverdue(head) {
		r.suspectOnce("request_timeout", "waited_ticks", r.ticks-max(r.head.start, r.timerBase),
			"ordered_large_bytes", r.orderedLarge-r.head.ordered, "pending", r.requests.fromClients)
	}
}

// suspectOnce suspects the primary unless this replica did within the
// timeout, and logs why (suspicions are rare: each is worth a line).
func (r *Replica) suspectOnce(reason string, args ...any) {
	if r.ticks-r.lastSuspect >= uint64(r.viewTimeout()) {
		r.lastSuspect = r.ticks
		r.cfg.Logger.Info("suspecting the primary", append([]any{"view", r.view, "reason", reason}, args...)...)
		r.suspect(r.view + 1)
	}
}

// suspect broadcasts that this replica wants view v (again, if the timer
// expires again) and counts its own vote.
func (r *Replica) suspect(v uint64) {
	r.suspectsSent++
	r.send(Broadcast, KindSuspect, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Suspect{Suspect: &wire.Suspect{NewView: v}}})
	r.recordSuspect(r.cfg.ID, v)
}

func (r *Replica) stepSuspect(from uint32, s *wire.Suspect) error {
	if s == nil {
		return ErrMalformed
	}
	if s.NewView <= r.view {
		return ErrStale
	}
	if prev, ok := r.suspects[from]; ok && prev >= s.NewView {
		return ErrDuplicate
	}
	r.recordSuspect(from, s.NewView)
	return nil
}

// abdicate ends this replica's own view: it moves to the next view and
// broadcasts a Suspect for it, which the others follow at once because it
// comes from the primary of the view it ends (see recordSuspect). A
// restarted primary abdicates (see Restore).
func (r *Replica) abdicate() {
	v := r.view + 1
	r.suspectsSent++
	r.send(Broadcast, KindSuspect, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Suspect{Suspect: &wire.Suspect{NewView: v}}})
	r.startViewChange(v)
}

// recordSuspect notes that from wants view v; once f+1 replicas want views
// above this one, at least one correct replica does, and this replica
// moves to the smallest of those views. A Suspect for the next view from
// the primary of this view is an abdication, followed at once: a primary
// can stall its own view anyway, so letting it end that view gives a
// faulty one no power it lacks, and a restarted primary hands over
// without waiting for the others' timers.
func (r *Replica) recordSuspect(from uint32, v uint64) {
	if prev, ok := r.suspects[from]; ok && prev >= v {
		return
	}
	if from != r.cfg.ID && from == r.primary(r.view) && v == r.view+1 {
		r.startViewChange(v)
		return
	}
	r.suspects[from] = v
	var higher []uint64
	for _, w := range r.suspects {
		if w > r.view {
			higher = append(higher, w)
		}
	}
	if len(higher) >= FaultTolerance(r.cfg.N)+1 {
		slices.Sort(higher)
		// The (f+1)-th highest is a view some correct replica wants.
		r.startViewChange(higher[len(higher)-FaultTolerance(r.cfg.N)-1])
	}
}

// startViewChange moves this replica to view v (not yet active) and
// broadcasts its VIEW-CHANGE. From here on it accepts nothing for lower
// views; Ready.View must be persisted before the VIEW-CHANGE is sent.
func (r *Replica) startViewChange(v uint64) {
	if v <= r.view && !(v == r.view && r.viewActive) {
		return
	}
	if v == r.view {
		return
	}
	r.view, r.viewActive, r.vcTimer = v, false, 0
	r.vcAttempts++ // each consecutive view change waits twice as long
	r.viewChangesStarted++
	r.persistView()
	r.future.clear()
	r.pendingView = r.pendingView[:0]
	r.newViewSent = false
	r.sendViewChange()
}

// persistView asks the runtime to store the view and whether it is
// active, before anything of this Ready is sent.
func (r *Replica) persistView() {
	v := r.view
	r.ready.View, r.ready.ViewActive = &v, r.viewActive
}

// sendViewChange broadcasts this replica's VIEW-CHANGE for r.view (its
// stable checkpoint and its prepared certificates above it) and counts
// its own vote.
func (r *Replica) sendViewChange() {
	v := r.view

	stable := r.checkpoints.Stable()
	vc := &wire.ViewChange{NewView: v}
	own := viewchange.ViewChange{From: r.cfg.ID, NewView: v, Stable: stable}
	if len(stable.Proof) > 0 { // else stable checkpoint 0, or the epoch's base: no proof
		vc.StableSequence = stable.Sequence
		vc.Stable = &wire.CheckpointCertificate{}
		for _, vote := range stable.Proof {
			vc.Stable.Votes = append(vc.Stable.Votes, vote.Signed)
		}
	}
	for _, seq := range slices.Sorted(maps.Keys(r.prepared)) {
		pc := r.prepared[seq]
		if seq <= stable.Sequence || seq > stable.Sequence+r.cfg.WindowSize {
			continue
		}
		wc := &wire.PreparedCertificate{PrePrepare: pc.PrePrepare.Signed}
		for _, p := range pc.Prepares {
			wc.Prepares = append(wc.Prepares, p.Signed)
		}
		vc.Prepared = append(vc.Prepared, wc)
		own.Prepared = append(own.Prepared, pc)
	}
	own.Signed = r.send(Broadcast, KindViewChange, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_ViewChange{ViewChange: vc}})
	r.ownViewChange = own.Signed
	r.latestVC[r.cfg.ID] = own
	r.tryNewView()
}

// stepViewChange records a VIEW-CHANGE (its signatures checked).
func (r *Replica) stepViewChange(from uint32, vc *viewchange.ViewChange) error {
	if vc == nil || vc.From != from {
		return ErrMalformed
	}
	if vc.NewView < r.view || (vc.NewView == r.view && r.viewActive) {
		return ErrStale
	}
	if err := r.vcConfig.ValidateViewChange(*vc); err != nil {
		return fmt.Errorf("%w: %w", ErrViewChangeRejected, err)
	}
	if prev, ok := r.latestVC[from]; ok && prev.NewView >= vc.NewView {
		return ErrDuplicate
	}
	r.latestVC[from] = *vc
	r.maybeJoin()
	r.tryNewView()
	return nil
}

// maybeJoin: f+1 replicas asking for views above this replica's include a
// correct one, so it joins the smallest of those views.
func (r *Replica) maybeJoin() {
	var higher []uint64
	for from, vc := range r.latestVC {
		if from != r.cfg.ID && (vc.NewView > r.view) {
			higher = append(higher, vc.NewView)
		}
	}
	if len(higher) >= FaultTolerance(r.cfg.N)+1 {
		r.startViewChange(slices.Min(higher))
	}
}

// tryNewView: the primary of the view being changed to sends NEW-VIEW once
// it holds a quorum of valid VIEW-CHANGEs for it.
func (r *Replica) tryNewView() {
	if r.viewActive || r.newViewSent || !r.IsPrimary() {
		return
	}
	var vcs []viewchange.ViewChange
	for _, vc := range r.latestVC {
		if vc.NewView == r.view {
			vcs = append(vcs, vc)
		}
	}
	chosen, ok := r.vcConfig.Select(r.view, vcs)
	if !ok {
		return
	}
	decision, err := r.vcConfig.Decide(r.view, chosen)
	if err != nil {
		r.cfg.Logger.Error("view change: cannot decide from valid view changes", "view", r.view, "err", err)
		return
	}
	nv := &wire.NewView{View: r.view}
	for _, vc := range chosen {
		nv.ViewChanges = append(nv.ViewChanges, vc.Signed)
	}
	headers := make([]viewchange.PrePrepare, 0, len(decision.Proposals))
	for _, p := range decision.Proposals {
		signed := r.sign(&wire.ReplicaMessage{Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{
			View: r.view, Sequence: p.Sequence, Digest: append([]byte(nil), p.Digest[:]...)}}})
		nv.PrePrepares = append(nv.PrePrepares, signed)
		headers = append(headers, viewchange.PrePrepare{From: r.cfg.ID, View: r.view, Sequence: p.Sequence, Digest: p.Digest, Signed: signed})
	}
	r.newViewSent = true
	signed := r.send(Broadcast, KindNewView, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_NewView{NewView: nv}})
	r.enterNewView(decision, headers, signed)
}

// stepNewView checks a NEW-VIEW by recomputing its re-proposals from its
// VIEW-CHANGEs, and enters that view.
func (r *Replica) stepNewView(from uint32, signed *wire.Signed, nv *VerifiedNewView) error {
	if nv == nil {
		return ErrMalformed
	}
	if nv.View < r.view || (nv.View == r.view && r.viewActive) {
		return ErrStale
	}
	if from != r.primary(nv.View) {
		return ErrNotFromPrimary
	}
	decision, err := r.vcConfig.CheckNewView(nv.View, nv.ViewChanges, nv.PrePrepares)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNewViewRejected, err)
	}
	if nv.View > r.view {
		r.view = nv.View
	}
	r.enterNewView(decision, nv.PrePrepares, signed)
	return nil
}

// enterNewView starts normal operation in r.view: it adopts the decision's
// stable checkpoint, replaces the log above the last committed sequence by
// the re-proposals (pre-prepares of the new primary), prepares those whose
// batch it holds and asks for the others, and replays what arrived for
// this view before the NEW-VIEW.
func (r *Replica) enterNewView(d viewchange.Decision, headers []viewchange.PrePrepare, newView *wire.Signed) {
	r.viewActive, r.vcTimer = true, 0
	// No empty fill batch until the re-proposals are in place (moving the
	// window below proposes).
	r.adopting = true
	r.timerBase = r.ticks
	r.restartLivenessClocks()
	r.lastNewView, r.ownViewChange = newView, nil
	r.viewChangesCompleted++
	r.persistView()
	for from, vc := range r.latestVC {
		if vc.NewView <= r.view {
			delete(r.latestVC, from)
		}
	}
	for from, v := range r.suspects {
		if v <= r.view {
			delete(r.suspects, from)
		}
	}
	if d.Stable.Sequence > r.window.Low {
		if d.Stable.Sequence > r.checkpoints.Stable().Sequence {
			r.checkpoints.Restore(d.Stable)
		}
		if d.Stable.Sequence <= r.lastCommitted {
			r.moveWindow(&d.Stable)
		} else {
			r.requestStateTransfer(&d.Stable)
		}
	}
	// Batches this replica holds, by digest, from the old log.
	held := make(map[crypto.Digest]*slot)
	for _, seq := range slices.Sorted(maps.Keys(r.slots)) {
		s := r.slots[seq]
		if s.batch != nil {
			held[s.digest] = s
		}
		if seq > r.lastCommitted {
			delete(r.slots, seq) // replaced by the re-proposals below
		}
	}
	r.requests.reset(r.IsPrimary())
	maxSeq := r.lastCommitted
	for _, h := range headers {
		if h.Sequence <= r.window.Low || r.beyondEnd(h.Sequence) {
			continue // below the window, or beyond the end of the epoch: not prepared
		}
		maxSeq = max(maxSeq, h.Sequence)
		r.adoptProposal(h, held)
	}
	r.nextSequence = max(r.nextSequence, maxSeq+1)
	if r.IsPrimary() {
		r.nextSequence = maxSeq + 1
		// Re-send the re-proposals with their batches, for backups that
		// lack them.
		for _, h := range headers {
			if s := r.slots[h.Sequence]; s != nil && s.batch != nil && h.Sequence > r.window.Low {
				r.ready.Messages = append(r.ready.Messages, Outbound{To: Broadcast, Signed: s.prePrepare, Batch: s.batch, Kind: KindPrePrepare})
			}
		}
	}
	r.adopting = false
	pending := r.pendingView
	r.pendingView = nil
	for _, m := range pending {
		_ = r.Step(m)
	}
	r.deliver()
	r.propose()
	if !r.IsPrimary() {
		// Relay the requests clients sent here to the new primary: after
		// this view's prepares, and at most one batch of them (and at most
		// maxRelayedRequests), so that the relay cannot crowd the votes the
		// new view needs out of a bounded transport queue (it did: 2048
		// relayed requests overflowed the 1024-frame queue to the new
		// primary, the prepares behind them were dropped, and the view
		// stalled until retransmission). Clients send to every replica
		// after their timeout anyway.
		for _, req := range r.requests.fromClientRequests(min(r.cfg.MaxBatchSize, maxRelayedRequests)) {
			r.send(r.primary(r.view), KindForward, &wire.ReplicaMessage{
				Body: &wire.ReplicaMessage_ForwardedRequest{ForwardedRequest: req.Signed}})
		}
	}
}

// adoptProposal installs one re-proposal as the accepted pre-prepare of
// its sequence in the new view.
func (r *Replica) adoptProposal(h viewchange.PrePrepare, held map[crypto.Digest]*slot) {
	old := r.slots[h.Sequence]
	if old != nil && old.committed && old.digest != h.Digest {
		// Impossible with at most f faulty replicas: a committed batch is
		// in every quorum of VIEW-CHANGEs.
		r.cfg.Logger.Error("view change re-proposes a different batch at a committed sequence; not taking part",
			"sequence", h.Sequence, "view", r.view)
		return
	}
	s := &slot{view: r.view, prePrepare: h.Signed, digest: h.Digest,
		prepares: make(map[uint32]vote), commits: make(map[uint32]vote)}
	if old != nil && old.committed {
		s.committed, s.batch, s.requests = true, old.batch, old.requests
	} else if h.Digest == r.vcConfig.NullDigest {
		s.batch, s.requests = []*wire.Signed{}, nil
	} else if src := held[h.Digest]; src != nil {
		s.batch, s.requests = src.batch, src.requests
	} else {
		// A batch whose slot went in an earlier view change or a restart,
		// retained because a certificate may re-propose it (retainBatch).
		s.batch, s.requests = r.findBatch(h.Digest)
	}
	r.slots[h.Sequence] = s
	if s.batch == nil {
		// Nothing is sent for this slot until its batch arrives, and
		// acceptBatch logs the pre-prepare with the batch then; a bare
		// header is not logged (it could not be verified on restart).
		r.requestBatch(h.Digest)
		return
	}
	r.acceptBatch(h.Sequence, s)
}

// acceptBatch: a new-view slot's batch is known; log the pre-prepare with
// it and, on a backup, prepare.
func (r *Replica) acceptBatch(seq uint64, s *slot) {
	if seq > r.lastCommitted {
		// Executed batches (re-proposed at their committed sequence) are
		// not tracked again: nothing would ever release them.
		r.requests.ordered(s.batch, s.requests)
	}
	r.logPrePrepare(s.view, seq, s.prePrepare, s.digest, s.batch, s.requests)
	if r.IsPrimary() {
		r.tryPrepared(seq, s)
		return
	}
	r.prepare(s.view, seq, s)
	r.tryPrepared(seq, s)
}

func (r *Replica) requestBatch(d crypto.Digest) {
	r.send(Broadcast, KindBatchRequest, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_BatchRequest{
		BatchRequest: &wire.BatchRequest{Digest: append([]byte(nil), d[:]...)}}})
}

// stepBatchRequest answers with the batch if this replica holds it, in a
// slot or retained (see retainBatch), within the asker's serve budget.
func (r *Replica) stepBatchRequest(from uint32, br *wire.BatchRequest) error {
	d, err := digestOf(br.GetDigest())
	if err != nil {
		return err
	}
	if d == r.vcConfig.NullDigest {
		return nil // every replica has the null batch
	}
	batch, _ := r.findBatch(d)
	if batch == nil {
		return nil
	}
	// Charged to the asker's serve budget (serve.go): a 40-byte request
	// must not buy an unbounded stream of batches.
	if !r.serve.takeRequest(from, r.ticks) || !r.serve.takeBytes(from, r.ticks, batchBytes(batch)) {
		return ErrRateLimited
	}
	r.send(from, KindBatchReply, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_BatchReply{
		BatchReply: &wire.BatchReply{Digest: br.Digest, Requests: batch}}})
	return nil
}

// stepBatchReply attaches a batch (its digest and client signatures
// checked) to the slots of this view waiting for it.
func (r *Replica) stepBatchReply(m VerifiedMessage) error {
	d, err := digestOf(m.Body.GetBatchReply().GetDigest())
	if err != nil {
		return err
	}
	used := false
	// In sequence order; attaching may execute and move the window, which
	// removes slots (those are skipped).
	for _, seq := range slices.Sorted(maps.Keys(r.slots)) {
		s := r.slots[seq]
		if s != nil && s.digest == d && s.batch == nil && (s.committed || s.view == r.view) {
			r.attachBatch(seq, s, m.Batch, m.Requests)
			used = true
		}
	}
	if !used {
		return ErrDuplicate
	}
	return nil
}

// recordPrepared keeps the prepared certificate of a slot that just
// prepared, for later view changes, and logs it (before the commit that
// depends on it is sent).
func (r *Replica) recordPrepared(seq uint64, s *slot) {
	if prev, ok := r.prepared[seq]; ok && prev.PrePrepare.View > s.view {
		return
	}
	pc := viewchange.PreparedCertificate{PrePrepare: viewchange.PrePrepare{
		From: r.primary(s.view), View: s.view, Sequence: seq, Digest: s.digest, Signed: s.prePrepare}}
	wc := &wire.PreparedCertificate{PrePrepare: s.prePrepare}
	for _, id := range slices.Sorted(maps.Keys(s.prepares)) {
		v := s.prepares[id]
		if v.digest != s.digest || len(pc.Prepares) == r.cfg.PreparedVotes {
			continue
		}
		pc.Prepares = append(pc.Prepares, viewchange.Prepare{From: id, View: s.view, Sequence: seq, Digest: s.digest, Signed: v.signed})
		wc.Prepares = append(wc.Prepares, v.signed)
	}
	r.prepared[seq] = pc
	r.highestPrepared = max(r.highestPrepared, seq)
	r.ready.Persist = append(r.ready.Persist, LogEntry{View: s.view, Sequence: seq, Kind: KindPreparedCertificate, Certificate: wc})
}
