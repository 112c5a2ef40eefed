package protocol

import "github.com/pbftnode/pbftnode/wire"

// Liveness under load: the view-change timer follows the requests a backup
// waits for, and a monitor replaces a primary that orders far slower than
// recent views did.
//
// The timer. A backup keeps the requests clients sent it in arrival order
// (its own FIFO view). Only the head of that FIFO, the oldest one still
// pending, runs the timer, and its timer starts when it became the head:
// while older requests were pending, their own timer was running. An
// honest primary orders FIFO too, so the head is what it orders next from
// this backup's point of view; requests ahead of the head in the primary's
// queue that this backup never saw (other clients', sent only to the
// primary) are ordered first. Large requests are what makes that take
// long, so the bytes the primary orders beyond orderCreditFreeBytes per
// request (large bytes) buy the head time, at a conservative minimum rate
// (orderCreditBytesPerTick, 16 KiB per tick: 1.6 MiB/s at the default
// 10 ms tick), up to orderCreditMaxTimeouts view-change timeouts. Small
// requests buy nothing: an honest primary orders thousands of them per
// tick. So:
//
//   - a primary that withholds a request is suspected within the timeout,
//     as before, while it orders small requests; if it orders large ones
//     meanwhile (its own junk included), within 1 + orderCreditMaxTimeouts
//     timeouts at most;
//   - a primary working through a burst of large requests at 1.6 MiB/s or
//     more is not suspected for orderCreditMaxTimeouts timeouts beyond the
//     base one: with 8 MiB per client key pending at most, one key's burst
//     drains in that time at that rate.
//
// Progress on the head's client key also restarts its timer: a key with
// many requests outstanding (a burst, and the per-key budget refusing
// some of them for a while) is served in the primary's order, which need
// not be this backup's; while the key's requests are ordered, the primary
// is not ignoring it, and the key's client window bounds how far it can
// go on around one withheld request.
//
// The slow-primary monitor (Aardvark's rule, with a demand test). A
// backup counts, in windows of slowWindowTicks, the requests and bytes
// this view's primary ordered, and keeps as reference a slowly decaying
// maximum of those per-window figures over recent windows, in earlier
// views and this one (the decay halves it in about 44 windows). A window
// is slow when the backup saw demand in it (on average slowDemandPending
// client-sent requests pending here, or the primary's batches averaging at
// least slowDemandBatchRequests, or slowDemandBatchFraction of
// MaxBatchSize when that is fewer, which a primary cuts only when requests
// queue; how many requests wait is the evidence, not how large a batch may
// grow) and the primary ordered under 1/slowFactor of the
// reference in requests and in bytes both. After slowWindowsToSuspect
// consecutive slow windows the backup suspects the primary (a Suspect, so
// f+1 backups must agree, as with the timer). The first window of a view
// is not judged, references under slowMinReferenceRequests are not
// trusted, and light load (a few clients doing one request at a time)
// shows no demand: its batches hold a request or two and fewer than
// slowDemandPending of its requests can wait here. Honest throughput on a
// noisy 2-core machine varies by about 2x; the rule wants 5x for two
// seconds. Latency evidence (how long a request known here waits for its
// PRE-PREPARE) is not used: clients send to the primary alone until their
// 1 s timeout, so under a slow primary backups rarely hold requests long
// enough to measure, while the batches the primary cuts show its load.
// The stall rule (liveness_stall.go) suspects sooner a saturated primary
// that stops proposing; its suspicions count in suspects too.
const (
	orderCreditBytesPerTick    = 16 << 10
	orderCreditFreeBytes       = 4 << 10
	orderCreditMaxTimeouts     = 4
	slowWindowTicks            = 100
	slowFactor                 = 5
	slowWindowsToSuspect       = 2
	slowMinReferenceRequests   = 64
	slowDemandBatchRequests    = 16 // batches of this many requests or more show demand
	slowDemandBatchFraction    = 16 // or of MaxBatchSize/16 when that is fewer
	slowDemandPending          = 8  // or this many client requests pending here on average
	slowReferenceDecayFraction = 64 // the reference loses 1/64 per window
)

// headTimer is the view-change timer of the request at the head of this
// backup's FIFO of client-sent requests.
type headTimer struct {
	key     requestKey
	running bool
	// start is the tick the request became the head; ordered is
	// r.orderedLarge then.
	start, ordered uint64
}

// primaryMonitor measures what this view's primary orders per window.
type primaryMonitor struct {
	windowStart          uint64
	reqs, bytes, batches uint64
	pendingSum           uint64
	refReqs, refBytes    uint64
	slowWindows          int
	judge                bool // false for the first window of a view
	suspects             uint64
	stall                stallWatch
}

// noteOrdered counts a batch this replica logged a pre-prepare for: the
// view-change timer's credit and the slow-primary monitor's figures.
func (r *Replica) noteOrdered(batch []*wire.Signed, reqs []*wire.Request) {
	n := uint64(0)
	for i, s := range batch {
		size := requestSize(s)
		n += uint64(size)
		r.orderedLarge += uint64(size - min(size, orderCreditFreeBytes))
		if i < len(reqs) && reqs[i] != nil {
			r.requests.noteKeyOrdered(string(reqs[i].ClientId), r.ticks)
		}
	}
	r.monitor.stall.noteBatch(len(batch), r.cfg.MaxBatchSize, r.ticks)
	if len(batch) > 0 {
		r.monitor.reqs += uint64(len(batch))
		r.monitor.bytes += n
		r.monitor.batches++
	}
}

// restartLivenessClocks restarts the head timer and the monitor's window
// when a view starts or a state transfer ends.
func (r *Replica) restartLivenessClocks() {
	r.head.running = false
	m := &r.monitor
	m.windowStart, m.reqs, m.bytes, m.batches, m.pendingSum = r.ticks, 0, 0, 0, 0
	m.slowWindows, m.judge = 0, false
	m.stall.restart(r.ticks, r.lastCommitted, r.window.Low)
}

// headOverdue runs the head request's timer and reports whether the head
// has waited longer than the timeout plus its ordering credit.
func (r *Replica) headOverdue(head arrival) bool {
	if !r.head.running || r.head.key != head.key {
		r.head = headTimer{key: head.key, running: true, start: r.ticks, ordered: r.orderedLarge}
	}
	// Progress on the head's client key restarts its timer: a key with
	// many requests outstanding (a burst) is served in the primary's
	// order, which need not be this backup's, and while its requests are
	// ordered the primary is not ignoring it. A key's client window bounds
	// how far the primary can go on around one withheld request.
	if p := r.requests.keyProgress(head.key.client); p > r.head.start {
		r.head.start, r.head.ordered = p, r.orderedLarge
	}
	since := max(r.head.start, r.timerBase)
	credit := min((r.orderedLarge-r.head.ordered)/orderCreditBytesPerTick,
		uint64(orderCreditMaxTimeouts*r.cfg.ViewChangeTimeoutTicks))
	return r.ticks-since >= uint64(r.viewTimeout())+credit
}

// monitorTick runs the slow-primary monitor on an active backup; it
// reports whether the primary should be suspected.
func (r *Replica) monitorTick() bool {
	m := &r.monitor
	m.pendingSum += uint64(r.requests.fromClients)
	if r.ticks-m.windowStart < slowWindowTicks {
		return false
	}
	slow := m.judge && !r.IsPrimary() && r.windowDemand() &&
		m.refReqs >= slowMinReferenceRequests &&
		m.reqs*slowFactor < m.refReqs && m.bytes*slowFactor < m.refBytes
	m.refReqs = max(m.reqs, m.refReqs-m.refReqs/slowReferenceDecayFraction)
	m.refBytes = max(m.bytes, m.refBytes-m.refBytes/slowReferenceDecayFraction)
	m.windowStart, m.reqs, m.bytes, m.batches, m.pendingSum = r.ticks, 0, 0, 0, 0
	m.stall.nextWindow()
	m.judge = true
	if !slow {
		m.slowWindows = 0
		return false
	}
	m.slowWindows++
	if m.slowWindows < slowWindowsToSuspect {
		return false
	}
	m.slowWindows = 0
	m.suspects++
	return true
}

// windowDemand reports whether the window showed requests waiting: on
// average slowDemandPending client requests pending here, or well-filled
// batches.
func (r *Replica) windowDemand() bool {
	m := &r.monitor
	if m.pendingSum >= slowDemandPending*slowWindowTicks {
		return true
	}
	threshold := uint64(demandBatch(r.cfg.MaxBatchSize))
	return m.batches > 0 && m.reqs >= threshold*m.batches
}

// demandBatch is the average batch size, in requests, that shows demand
// to the slow-primary monitor when batches hold at most maxBatch.
func demandBatch(maxBatch int) int {
	return max(2, min(maxBatch/slowDemandBatchFraction, slowDemandBatchRequests))
}
