package protocol

// earlyPrepareSpan times MaxInFlight is the span: how far above its
// durable base a PREPARE may go early. The primary keeps at most
// MaxInFlight batches in flight, so a backup's COMMITs trail its PREPAREs
// by about that many sequences (and the base by one Ready more); beyond
// the span, as for the re-proposals of a NEW-VIEW, a PREPARE waits for
// its Ready's append.
const earlyPrepareSpan = 4

// earlyPrepares decides which of a backup's PREPAREs may go before their
// log entry is durable (Outbound.BeforePersist), and which PREPAREs a
// restarted replica withholds because it may have sent one for the same
// view and sequence before a crash lost its entry.
//
// The bound is a base that is durable: the highest sequence this replica
// sent a COMMIT for in the view (a COMMIT goes only after a durable
// append, which covers everything logged before it), or the low
// watermark (the stable checkpoint is stored durably). A PREPARE for a
// sequence up to base+span may go early; one beyond waits for its
// Ready's append, which then makes the next bases durable. A base counts
// once the Ready that carried it was carried out, which the core knows
// when the next Ready is asked for. So every early PREPARE of a view is
// at most span above a durable base of that view, and a restarted replica
// withholds its PREPAREs in the view it restored up to its restored base
// (its stable checkpoint and its logged COMMITs of that view) plus span:
// beyond that it cannot have sent any.
type earlyPrepares struct {
	span uint64
	// commitView and committed: the highest sequence this replica sent
	// a COMMIT for in view commitView (its latest).
	commitView, committed uint64
	// lastView and last: the base as of the last Ready returned (not
	// carried out yet); view and base: as of the one before, carried out.
	lastView, last uint64
	view, base     uint64

	// restoredView is the view Restore restored; this replica withholds
	// its PREPAREs there up to withholdThrough (when restored).
	restored        bool
	restoredView    uint64
	withholdThrough uint64
	withheld        uint64
}

// noteCommit records this replica's COMMIT for (view, seq).
func (e *earlyPrepares) noteCommit(view, seq uint64) {
	switch {
	case view > e.commitView:
		e.commitView, e.committed = view, seq
	case view == e.commitView:
		e.committed = max(e.committed, seq)
	}
}

// readied shifts the bases when a Ready is returned: the previous one
// was carried out, so its base is durable now; view and low are the
// replica's now, which the Ready being returned makes durable.
func (e *earlyPrepares) readied(view, low uint64) {
	e.view, e.base = e.lastView, e.last
	e.lastView, e.last = view, e.baseOf(view, low)
}

// baseOf is the base in view given the low watermark: the higher of it
// and this replica's highest COMMIT in view.
func (e *earlyPrepares) baseOf(view, low uint64) uint64 {
	if e.commitView == view {
		return max(low, e.committed)
	}
	return low
}

// early reports whether this replica's PREPARE for (view, seq) may go
// before its log entry is durable.
func (e *earlyPrepares) early(view, seq uint64) bool {
	return view == e.view && seq <= e.base+e.span
}

// withholds reports whether a restarted replica must not prepare (view,
// seq).
func (e *earlyPrepares) withholds(view, seq uint64) bool {
	return e.restored && view == e.restoredView && seq <= e.withholdThrough
}

// restore sets what a restarted replica withholds: in view, PREPAREs up
// to its base (its stable checkpoint low, or its highest logged COMMIT of
// the view, noted before) plus span.
func (e *earlyPrepares) restore(view, low uint64) {
	e.restored, e.restoredView, e.withholdThrough = true, view, e.baseOf(view, low)+e.span
}
