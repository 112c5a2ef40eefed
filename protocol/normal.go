package protocol

import (
	"bytes"
	"maps"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// slot is the log entry for one sequence number in the current view.
type slot struct {
	view       uint64
	prePrepare *wire.Signed // accepted or sent pre-prepare; nil until then
	digest     crypto.Digest
	batch      []*wire.Signed // the signed requests; nil while missing
	requests   []*wire.Request
	prepares   map[uint32]vote
	commits    map[uint32]vote
	prepared   bool
	committed  bool
	// largeBytes: on the primary, the large-request bytes of a batch it
	// proposed (see propose).
	largeBytes int
}

// vote is one replica's prepare or commit for a digest.
type vote struct {
	digest crypto.Digest
	signed *wire.Signed
	// byChannel: a COMMIT taken on its author's session's word, its
	// signature not (yet) checked (VerifiedMessage.ByChannel);
	// unrelayable: Config.RelayCheck refused its signature since.
	byChannel, unrelayable bool
}

func (r *Replica) slot(seq uint64) *slot {
	s := r.slots[seq]
	if s == nil {
		s = &slot{view: r.view, prepares: make(map[uint32]vote), commits: make(map[uint32]vote)}
		r.slots[seq] = s
	}
	return s
}

// inFlight is how many sequences the primary proposed that have not
// committed yet.
func (r *Replica) inFlight() int { return int(r.nextSequence - 1 - r.lastCommitted) }

// propose cuts batches from the request queue while the pipeline and the
// window have room. A partial batch goes out at once when nothing is in
// flight, or fewer than MaxPartialInFlight batches are and the newest of
// them is small (PipelinedBatchBelow), otherwise when one commits or after
// BatchDelayTicks (if set).
//
// Large requests (over largeRequestBytes) in flight are bounded by
// MaxLargeInFlightBytes in all: a burst of large requests from one key would
// otherwise fill every batch of the pipeline with megabytes that the
// small requests behind them wait for (agreement on a batch takes time in
// proportion to its bytes). Beyond the bound, large requests wait in the
// queue while the small ones behind them are batched; one large request
// always fits once nothing large is in flight.
func (r *Replica) propose() {
	for r.canPropose() {
		before := r.requests.queued()
		allowance, alone := r.largeAllowance()
		signed, reqs, large := r.requests.popBatch(r.cfg.MaxBatchSize, r.cfg.MaxBatchBytes, largeGate{allowance, alone, r.pace, r.ticks})
		if len(signed) == 0 {
			if r.requests.queued() == before {
				return // only large requests wait, and the bound is reached
			}
			continue // only stale queue entries were dropped
		}
		r.batchWait = 0
		r.proposeBatch(signed, reqs, large)
	}
	r.fillToEnd()
}

// proposeBatch assigns the next sequence to a batch (empty: a null
// request) and pre-prepares it; large is its large-request bytes.
func (r *Replica) proposeBatch(signed []*wire.Signed, reqs []*wire.Request, large int) {
	seq := r.nextSequence
	r.nextSequence++
	digest := crypto.BatchDigest(signed)
	if signed == nil {
		signed = []*wire.Signed{}
	}
	pp := &wire.PrePrepare{View: r.view, Sequence: seq, Digest: digest[:]}
	out := r.sign(&wire.ReplicaMessage{Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: pp}})
	r.ready.Messages = append(r.ready.Messages, Outbound{To: Broadcast, Signed: out, Batch: signed, Kind: KindPrePrepare, BeforePersist: true})
	r.logPrePrepare(r.view, seq, out, digest, signed, reqs)
	s := r.slot(seq)
	s.prePrepare, s.digest, s.batch, s.requests = out, digest, signed, reqs
	s.largeBytes = large
}

// newestInFlightSize is the number of requests of the newest batch in
// flight; the caller checked that one is.
func (r *Replica) newestInFlightSize() int {
	if s := r.slots[r.nextSequence-1]; s != nil {
		return len(s.batch)
	}
	return 0
}

// largeAllowance is how many bytes of large requests the next batch may
// carry (what MaxLargeInFlightBytes leaves), and whether none is in
// flight, in which case one large request of any allowed size fits.
func (r *Replica) largeAllowance() (int, bool) {
	inFlight := r.largeInFlight()
	return max(0, r.cfg.MaxLargeInFlightBytes-inFlight), inFlight == 0
}

// largeInFlight sums the large-request bytes of the batches this primary
// proposed that have not committed.
func (r *Replica) largeInFlight() int {
	n := 0
	for seq := r.lastCommitted + 1; seq < r.nextSequence; seq++ {
		if s := r.slots[seq]; s != nil && s.view == r.view {
			n += s.largeBytes
		}
	}
	return n
}

// canPropose reports whether propose would cut a batch now: this replica
// is the active primary, requests are queued that the large-request bound
// lets through, fewer than MaxInFlight batches are in flight, the window
// has room, and the batch is full, or nothing is in flight, or fewer than
// MaxPartialInFlight batches are in flight and the newest has fewer than
// PipelinedBatchBelow requests, or the partial batch has waited
// BatchDelayTicks (when positive).
func (r *Replica) canPropose() bool {
	if !r.viewActive || !r.IsPrimary() || r.requests.queued() == 0 {
		return false
	}
	if r.inFlight() >= r.cfg.MaxInFlight || !r.window.Contains(r.nextSequence) || r.beyondEnd(r.nextSequence) {
		return false
	}
	full := r.requests.queued() >= r.cfg.MaxBatchSize
	waited := r.cfg.BatchDelayTicks > 0 && r.batchWait >= r.cfg.BatchDelayTicks
	if !full && !waited && r.inFlight() > 0 &&
		(r.inFlight() >= r.cfg.MaxPartialInFlight || r.newestInFlightSize() >= r.cfg.PipelinedBatchBelow) {
		return false
	}
	// Last, as it scans the slots in flight and the queue: false when
	// only large requests wait, beyond the in-flight bound or their keys'
	// pace.
	allowance, alone := r.largeAllowance()
	return r.requests.proposable(largeGate{allowance, alone, r.pace, r.ticks})
}

func (r *Replica) stepPrePrepare(from uint32, pp *wire.PrePrepare, m VerifiedMessage) error {
	switch {
	case pp.View != r.view:
		return ErrWrongView
	case from != r.primary(r.view):
		return ErrNotFromPrimary
	case pp.Sequence <= r.window.Low:
		return ErrStale
	case !r.window.Contains(pp.Sequence):
		return ErrOutsideWindow
	case r.beyondEnd(pp.Sequence):
		return ErrBeyondEpoch
	case len(m.Batch) != len(m.Requests):
		return ErrMalformed // an empty batch is a null request (EndAt fills with them)
	case len(m.Batch) > r.cfg.MaxBatchSize:
		return ErrBatchTooLarge
	}
	size := 0
	for i, req := range m.Batch {
		if req == nil || m.Requests[i] == nil {
			return ErrMalformed
		}
		size += len(req.Payload) + len(req.Signature) + 8
	}
	if size > r.cfg.MaxBatchBytes+8*len(m.Batch) {
		return ErrBatchTooLarge
	}
	digest := crypto.BatchDigest(m.Batch)
	if !bytes.Equal(pp.Digest, digest[:]) {
		return ErrDigestMismatch
	}
	if m.Batch == nil {
		m.Batch = []*wire.Signed{} // a null request: a batch that is held (empty), not missing
	}
	s := r.slot(pp.Sequence)
	if s.committed {
		// Decided already (possibly by a commit certificate, before any
		// pre-prepare came): a pre-prepare can only bring the batch of the
		// decided digest; it never replaces it or orders anything again.
		switch {
		case s.digest != digest:
			return ErrConflictingPrePrepare
		case s.batch != nil:
			return ErrDuplicate
		}
		r.attachBatch(pp.Sequence, s, m.Batch, m.Requests)
		return nil
	}
	if s.prePrepare != nil {
		if s.digest != digest {
			return ErrConflictingPrePrepare
		}
		if s.batch != nil {
			return ErrDuplicate
		}
		// A NEW-VIEW re-proposal whose batch this replica lacked.
		r.attachBatch(pp.Sequence, s, m.Batch, m.Requests)
		return nil
	}
	s.prePrepare, s.digest, s.batch, s.requests = m.Signed, digest, m.Batch, m.Requests
	r.requests.ordered(m.Batch, m.Requests)
	r.logPrePrepare(pp.View, pp.Sequence, m.Signed, digest, m.Batch, m.Requests)
	r.prepare(pp.View, pp.Sequence, s)
	r.tryPrepared(pp.Sequence, s)
	return nil
}

// prepare sends and logs this backup's PREPARE for the pre-prepare in s.
// The PREPARE may go before its log entry is durable
// (Outbound.BeforePersist) when its sequence is close enough above a
// durable base (early.go): the entry must be durable only before this
// replica's COMMIT for the sequence, which the runtime sends after a
// durable append. A crash before that may lose a PREPARE the others hold;
// so a restarted replica sends no new PREPARE in the view it restored for
// the sequences it may have prepared early (Restore), where it might
// otherwise prepare a different pre-prepare of a faulty primary for the
// same sequence. It still commits those on the others' prepares.
func (r *Replica) prepare(view, seq uint64, s *slot) {
	if r.early.withholds(view, seq) {
		r.early.withheld++
		return
	}
	prep := &wire.Prepare{View: view, Sequence: seq, Digest: append([]byte(nil), s.digest[:]...)}
	out := r.sign(&wire.ReplicaMessage{Body: &wire.ReplicaMessage_Prepare{Prepare: prep}})
	early := r.early.early(view, seq)
	r.ready.Messages = append(r.ready.Messages, Outbound{To: Broadcast, Signed: out, Kind: KindPrepare, BeforePersist: early})
	r.persist(view, seq, KindPrepare, out)
	s.prepares[r.cfg.ID] = vote{digest: s.digest, signed: out}
}

// checkVote applies the checks common to prepares and commits.
func (r *Replica) checkVote(view, seq uint64, digest []byte) (crypto.Digest, error) {
	var d crypto.Digest
	switch {
	case view != r.view:
		return d, ErrWrongView
	case seq <= r.window.Low && seq > 0:
		return d, ErrStale
	case !r.window.Contains(seq):
		return d, ErrOutsideWindow
	case len(digest) != len(d):
		return d, ErrMalformed
	}
	copy(d[:], digest)
	return d, nil
}

func (r *Replica) stepPrepare(from uint32, p *wire.Prepare, signed *wire.Signed) error {
	d, err := r.checkVote(p.View, p.Sequence, p.Digest)
	if err != nil {
		return err
	}
	if from == r.primary(r.view) {
		return ErrFromPrimary
	}
	s := r.slot(p.Sequence)
	if _, dup := s.prepares[from]; dup {
		return ErrDuplicate // a replica's first prepare stands
	}
	s.prepares[from] = vote{digest: d, signed: signed}
	r.tryPrepared(p.Sequence, s)
	return nil
}

func (r *Replica) stepCommit(from uint32, c *wire.Commit, signed *wire.Signed, byChannel bool) error {
	d, err := r.checkVote(c.View, c.Sequence, c.Digest)
	if err != nil {
		return err
	}
	s := r.slot(c.Sequence)
	if _, dup := s.commits[from]; dup {
		return ErrDuplicate
	}
	s.commits[from] = vote{digest: d, signed: signed, byChannel: byChannel}
	if byChannel {
		r.commitsByChannel++
	}
	r.tryCommitted(c.Sequence, s)
	return nil
}

func matching(votes map[uint32]vote, d crypto.Digest) int {
	n := 0
	for _, v := range votes {
		if v.digest == d {
			n++
		}
	}
	return n
}

// tryPrepared: prepared = the pre-prepare plus 2f matching prepares from
// distinct backups (quorum-1 in general); then this replica commits.
func (r *Replica) tryPrepared(seq uint64, s *slot) {
	if s.prepared || s.prePrepare == nil || matching(s.prepares, s.digest) < r.cfg.PreparedVotes {
		return
	}
	s.prepared = true
	r.recordPrepared(seq, s)
	r.preparedRun.add(s.view, seq)
	c := &wire.Commit{View: s.view, Sequence: seq, Digest: s.digest[:]}
	out := r.send(Broadcast, KindCommit, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Commit{Commit: c}})
	r.persist(s.view, seq, KindCommit, out)
	if s.batch != nil {
		r.ready.Prepared = append(r.ready.Prepared, CommittedBatch{View: s.view, Sequence: seq, Digest: s.digest, Requests: s.requests})
	}
	r.early.noteCommit(s.view, seq)
	s.commits[r.cfg.ID] = vote{digest: s.digest, signed: out}
	r.tryCommitted(seq, s)
}

// tryCommitted: committed-local = prepared plus 2f+1 (a quorum of)
// matching commits from distinct replicas. A quorum of commits for a
// digest this replica did not accept is a commit certificate too: at
// least f+1 correct replicas prepared that batch, so it is the one decided
// at seq (this replica's primary equivocated, or it missed messages); the
// replica adopts it, fetching the batch if needed, without voting again.
func (r *Replica) tryCommitted(seq uint64, s *slot) {
	if s.committed {
		return
	}
	if s.prepared && matching(s.commits, s.digest) >= r.cfg.CommitVotes {
		s.committed = true
		r.deliver()
		return
	}
	d, n := topDigest(s.commits)
	if n < r.cfg.CommitVotes || (s.digest == d && s.prePrepare != nil) {
		return
	}
	if s.requests != nil {
		r.requests.unordered(s.requests)
	}
	// The pre-prepare and batch this replica accepted lost; it no longer
	// holds a pre-prepare for the decided digest, so it does not prepare
	// or commit it (it already voted for the other one).
	s.prePrepare, s.batch, s.requests = nil, nil, nil
	s.digest, s.committed = d, true
	s.batch, s.requests = r.findBatch(d)
	r.adoptedCommits++
	if s.batch == nil {
		r.requestBatch(d)
		return
	}
	r.requests.ordered(s.batch, s.requests)
	r.deliver()
}

// topDigest returns the digest with the most votes and their number; of
// digests with equally many votes, the lowest (whatever the map's order).
func topDigest(votes map[uint32]vote) (crypto.Digest, int) {
	counts := make(map[crypto.Digest]int, 2)
	for _, v := range votes {
		counts[v.digest]++
	}
	var best crypto.Digest
	top := 0
	for d, n := range counts {
		if n > top || (n == top && bytes.Compare(d[:], best[:]) < 0) {
			best, top = d, n
		}
	}
	return best, top
}

// findBatch returns a batch with digest d that this replica holds, in a
// slot or retained (see retainBatch); nil if it holds none.
func (r *Replica) findBatch(d crypto.Digest) ([]*wire.Signed, []*wire.Request) {
	if d == r.vcConfig.NullDigest {
		return []*wire.Signed{}, nil
	}
	for _, seq := range slices.Sorted(maps.Keys(r.slots)) {
		if s := r.slots[seq]; s.digest == d && s.batch != nil {
			return s.batch, s.requests
		}
	}
	if b := r.retained[d]; b != nil {
		return b.batch, b.requests
	}
	return nil, nil
}

// attachBatch gives a slot waiting for its batch the batch: a committed
// one is executed, a NEW-VIEW re-proposal is prepared.
func (r *Replica) attachBatch(seq uint64, s *slot, batch []*wire.Signed, reqs []*wire.Request) {
	s.batch, s.requests = batch, reqs
	if s.committed {
		if seq > r.lastCommitted {
			r.requests.ordered(batch, reqs)
		}
		r.deliver()
		return
	}
	r.acceptBatch(seq, s)
}

// deliver hands out committed batches strictly in sequence order.
func (r *Replica) deliver() {
	for r.transferring == nil {
		seq := r.lastCommitted + 1
		s := r.slots[seq]
		if s == nil || !s.committed || s.batch == nil {
			break
		}
		r.ready.Committed = append(r.ready.Committed, CommittedBatch{
			View: s.view, Sequence: seq, Digest: s.digest, Requests: s.requests,
		})
		r.requests.committed(s.requests)
		r.lastCommitted = seq
		r.noteProgress()
		r.vcTimer, r.vcAttempts = 0, 0
		if r.nextSequence <= seq {
			r.nextSequence = seq + 1
		}
	}
	// A checkpoint that became stable through the others' votes while this
	// replica was behind takes effect once it has caught up to it.
	if st := r.checkpoints.Stable(); st.Sequence > r.window.Low && st.Sequence <= r.lastCommitted {
		r.moveWindow(&st)
		return
	}
	// The freed in-flight place is used at the next Ready, with every
	// request queued by then.
}
