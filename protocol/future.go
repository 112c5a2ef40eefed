package protocol

// futureBuffer holds messages of the current view for sequences just above
// the high watermark: a replica whose checkpoint is a little behind the
// others' would otherwise drop them and stall. It holds sequences in
// (high, high+WindowSize] only, at most 3N messages each (a pre-prepare,
// a prepare and a commit per replica), so at most 3N*WindowSize messages.
type futureBuffer struct {
	perSequence int
	bySeq       map[uint64][]VerifiedMessage
}

func newFutureBuffer(n int) *futureBuffer {
	return &futureBuffer{perSequence: 3 * n, bySeq: make(map[uint64][]VerifiedMessage)}
}

func (b *futureBuffer) add(seq uint64, m VerifiedMessage) bool {
	if len(b.bySeq[seq]) >= b.perSequence {
		return false
	}
	b.bySeq[seq] = append(b.bySeq[seq], m)
	return true
}

// takeUpTo removes and returns the buffered messages for sequences up to
// high, in sequence order; messages at or below low are discarded.
func (b *futureBuffer) takeUpTo(low, high uint64) []VerifiedMessage {
	var out []VerifiedMessage
	for seq := low + 1; seq <= high; seq++ {
		out = append(out, b.bySeq[seq]...)
		delete(b.bySeq, seq)
	}
	for seq := range b.bySeq {
		if seq <= low {
			delete(b.bySeq, seq)
		}
	}
	return out
}

func (b *futureBuffer) len() int {
	n := 0
	for _, ms := range b.bySeq {
		n += len(ms)
	}
	return n
}

func (b *futureBuffer) clear() { clear(b.bySeq) }

// deferIfAhead buffers m when seq lies in the next window; it reports
// whether m was taken.
func (r *Replica) deferIfAhead(view, seq uint64, m VerifiedMessage) bool {
	high := r.window.High()
	if view != r.view || seq <= high || seq > high+r.cfg.WindowSize {
		return false
	}
	return r.future.add(seq, m)
}

// replayFuture steps the buffered messages that the moved window now
// admits.
func (r *Replica) replayFuture() {
	for _, m := range r.future.takeUpTo(r.window.Low, r.window.High()) {
		_ = r.Step(m) // drop reasons were already counted when they arrived
	}
}
