package protocol

// The stall rule: a fast suspicion of a saturated primary that stops
// proposing.
//
// The throughput monitor (liveness.go) needs two windows of evidence, so a
// primary that holds each PRE-PREPARE for just under the view-change
// timeout kept the cluster slow for two to three seconds before it was
// replaced, and every request outstanding meanwhile waited that long. The
// first held PRE-PREPARE already shows: under a saturating load an honest
// primary cuts well-filled batches a few ticks apart, and as soon as a
// batch commits it proposes the next from the requests that kept
// arriving. So a backup whose latest stallHistory pre-prepares of this view
// carried well-filled batches on average (stallWellFilledRequests, or half
// of MaxBatchSize when that is fewer, and at least stallMinBatchRequests),
// whose
// pipeline is empty (every pre-prepare of this view logged here committed
// here, the window has room, nothing is buffered beyond it) and which
// holds the primary's own COMMIT for the last sequence (the primary got
// that far itself), expects the next PRE-PREPARE within a few ticks. When
// none comes for stallLimit ticks, it suspects the primary, with a Suspect
// that needs f+1 backups, as every other suspicion; it then waits for a
// fresh history before judging again.
//
// stallLimit is stallGapFactor times the longest such wait this backup saw
// the primaries of recent views take (a maximum that decays by
// 1/stallGapDecayFraction per monitor window), kept within
// stallMinPercent and stallMaxPercent of the view-change timeout: a
// primary on a loaded machine (its loop held up by a long fsync or by
// executing large requests) showed waits of up to 30 ticks, a saturated
// one on a quiet machine a few. The upper bound stays under the 90% of
// the timeout that byzantine's slow-primary holds each PRE-PREPARE, so
// the backups suspect it before its first held PRE-PREPARE arrives, and
// the requests outstanding then wait for one view change instead of a
// slow phase of several holds.
//
// The backup must also hold a request a client sent it directly: clients
// send to the primary alone until their retransmission timeout (1 s by
// default, 500 ms in the benchmark), then to every replica, and a backup
// relays what it receives to the primary. Without that evidence a
// saturating load that stops dead (every client at once, the end of a
// batch job, or a faulty client's bursts timed to look saturated) would
// leave the backups expecting batches that never come, and they would
// replace an idle primary. With it, a request is known to wait, and an
// honest primary that was relayed it proposes it within a few ticks. So
// the rule suspects a slow primary once the clients' retransmissions
// arrive (by then the primary's pipeline has been empty for longer than
// the limit), before its first held PRE-PREPARE at the benchmark's
// retransmission timeout. A primary that means to evade
// the rule can (by cutting small batches); the throughput monitor and the
// request timer still judge it. The rule only adds suspicions, which
// change views and never decide what executes, so it cannot affect
// safety. It counts ticks, like the rest of the core; the runtime's
// ticker drops the ticks a busy loop misses, so a backup stalled itself
// counts less, not more.
const (
	stallMinPercent         = 40
	stallMaxPercent         = 80
	stallGapFactor          = 3
	stallGapDecayFraction   = 8
	stallHistory            = 16  // the latest pre-prepares judged
	stallWellFilledRequests = 128 // a well-filled batch holds this many requests, or half of MaxBatchSize when fewer
	stallMinBatchRequests   = 16  // and at least this many
)

// stallWatch is the stall rule's state for this view's primary.
type stallWatch struct {
	// since is the tick of the latest progress seen here (a pre-prepare
	// logged, a commit, a window move, the view's start) or, once voted,
	// of the primary's COMMIT for the last committed sequence.
	since uint64
	// voted: the primary's COMMIT for committed is here.
	voted bool
	// committed and low are r.lastCommitted and r.window.Low as last seen.
	committed, low uint64
	// sizes holds the batch sizes of the latest stallHistory pre-prepares
	// logged in this view (a ring, next the oldest), n how many of them
	// there are, sum their total.
	sizes  [stallHistory]int
	next   int
	n, sum int
	// refGap is the decaying maximum of the waits, from the primary's
	// COMMIT to its next PRE-PREPARE, that ended with a PRE-PREPARE.
	refGap uint64
}

// noteBatch records a pre-prepare of a batch of size requests logged here.
func (w *stallWatch) noteBatch(size, maxBatch int, now uint64) {
	if w.voted {
		w.refGap = max(w.refGap, now-w.since)
	}
	w.since, w.voted = now, false
	w.sum += size - w.sizes[w.next]
	w.sizes[w.next] = size
	w.next = (w.next + 1) % stallHistory
	w.n = min(w.n+1, stallHistory)
}

// saturated reports whether the latest stallHistory pre-prepares of this
// view carried well-filled batches on average.
func (w *stallWatch) saturated(maxBatch int) bool {
	return w.n == stallHistory && w.sum >= stallHistory*wellFilledBatch(maxBatch)
}

// wellFilledBatch is the average batch size, in requests, that shows a
// saturating load to the stall rule when batches hold at most maxBatch.
func wellFilledBatch(maxBatch int) int {
	return max(min(maxBatch/2, stallWellFilledRequests), stallMinBatchRequests)
}

// forget drops the batch history: the next stall is judged on a fresh one.
func (w *stallWatch) forget() { w.sizes, w.next, w.n, w.sum = [stallHistory]int{}, 0, 0, 0 }

// restart clears the rule's evidence at the start of a view (or the end of
// a state transfer); the reference gap carries over.
func (w *stallWatch) restart(now, committed, low uint64) {
	*w = stallWatch{since: now, committed: committed, low: low, refGap: w.refGap}
}

// nextWindow decays the reference gap at a monitor window's end.
func (w *stallWatch) nextWindow() { w.refGap -= w.refGap / stallGapDecayFraction }

// stallLimit is how many ticks a saturated primary with an empty pipeline
// may take to send its next PRE-PREPARE.
func (r *Replica) stallLimit() uint64 {
	timeout := uint64(r.cfg.ViewChangeTimeoutTicks)
	lo, hi := timeout*stallMinPercent/100, timeout*stallMaxPercent/100
	return min(max(stallGapFactor*r.monitor.stall.refGap, lo), hi)
}

// stalled runs the stall rule on an active backup for one tick. It reports
// whether the primary should be suspected, and how long it waited.
func (r *Replica) stalled() (uint64, bool) {
	w := &r.monitor.stall
	if r.lastCommitted != w.committed || r.window.Low != w.low {
		w.committed, w.low, w.since, w.voted = r.lastCommitted, r.window.Low, r.ticks, false
	}
	if r.IsPrimary() || !w.saturated(r.cfg.MaxBatchSize) || !r.pipelineDrained() {
		return 0, false
	}
	if !w.voted {
		if !r.primaryCommitted(r.lastCommitted) {
			return 0, false
		}
		w.voted, w.since = true, r.ticks
	}
	// Only a backup that holds a request a client sent it (a retransmission,
	// relayed to the primary) knows the primary has work: without one, a
	// saturating load that stopped dead looks the same as a stall.
	if r.requests.fromClients == 0 {
		return 0, false
	}
	waited := r.ticks - w.since
	if waited < r.stallLimit() {
		return 0, false
	}
	r.monitor.suspects++ // Status.SlowPrimarySuspects counts both rules
	w.forget()
	return waited, true
}

// primaryCommitted reports whether this view's primary's COMMIT for seq
// is here.
func (r *Replica) primaryCommitted(seq uint64) bool {
	s := r.slots[seq]
	if s == nil || s.view != r.view {
		return false
	}
	_, ok := s.commits[r.primary(r.view)]
	return ok
}

// pipelineDrained reports whether nothing but the primary keeps it from
// proposing, as far as this replica sees: every pre-prepare of this view
// logged here committed here, the window has room for the next sequence,
// and no message waits beyond the window (this replica is not behind).
func (r *Replica) pipelineDrained() bool {
	next := r.lastCommitted + 1
	if !r.window.Contains(next) || r.beyondEnd(next) || len(r.future.bySeq) > 0 {
		return false
	}
	for seq, s := range r.slots {
		if seq > r.lastCommitted && s.view == r.view && s.prePrepare != nil {
			return false
		}
	}
	return true
}
