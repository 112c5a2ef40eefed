package protocol

import "github.com/pbftnode/pbftnode/wire"

// No amplification: a BATCH-REQUEST is about 40 bytes and its answer up to
// MaxBatchBytes, and a Fetch answer carries the batches of up to
// DefaultFetchSlots sequences. What this replica sends in answer to either
// is charged to the asking replica's serve budget, a token bucket refilled
// every RetransmitTicks (deterministic, in ticks): at most
// MaxServeBytesPerPeer bytes of batches and MaxServeRequestsPerPeer
// answered requests per period, with the bucket holding at most one
// period's worth. What does not fit is dropped (ErrRateLimited) and counted
// by the runtime; an honest asker re-asks for a batch it still lacks on its
// retransmission timer (retransmitTick), and the default holds two batches
// of the largest size, so legitimate catch-up is slowed at worst, never
// stopped. A Fetch is answered at most once per RetransmitTicks/4 ticks
// per replica on top of this.

// serveBudget is the per-peer token bucket for data sent on request.
type serveBudget struct {
	bytesPerPeriod, requestsPerPeriod int64
	period                            uint64
	peers                             map[uint32]*peerServeBudget
}

// peerServeBudget holds one peer's tokens in units of 1/period of a
// byte or a request, so that a refill of a tick or two adds its share
// instead of rounding down to nothing.
type peerServeBudget struct {
	bytes, requests int64
	refilled        uint64
}

func newServeBudget(bytesPerPeriod, requestsPerPeriod int, period int) *serveBudget {
	return &serveBudget{bytesPerPeriod: int64(bytesPerPeriod), requestsPerPeriod: int64(requestsPerPeriod),
		period: uint64(max(1, period)), peers: make(map[uint32]*peerServeBudget)}
}

// unit is one byte or one request in a peer's tokens (see peerServeBudget).
func (b *serveBudget) unit() int64 { return int64(b.period) }

// peer returns from's bucket, refilled for the ticks since its last refill.
// from is a replica index checked by Step, so the map holds at most N.
func (b *serveBudget) peer(from uint32, now uint64) *peerServeBudget {
	p := b.peers[from]
	if p == nil {
		p = &peerServeBudget{bytes: b.bytesPerPeriod * b.unit(), requests: b.requestsPerPeriod * b.unit(), refilled: now}
		b.peers[from] = p
		return p
	}
	if elapsed := now - p.refilled; elapsed > 0 {
		e := int64(min(elapsed, b.period))
		p.bytes = min(b.bytesPerPeriod*b.unit(), p.bytes+b.bytesPerPeriod*e)
		p.requests = min(b.requestsPerPeriod*b.unit(), p.requests+b.requestsPerPeriod*e)
		p.refilled = now
	}
	return p
}

// takeRequest charges one answered request to from; false when from has
// used its requests for the period.
func (b *serveBudget) takeRequest(from uint32, now uint64) bool {
	p := b.peer(from, now)
	if p.requests < b.unit() {
		return false
	}
	p.requests -= b.unit()
	return true
}

// takeBytes charges n bytes sent to from; false (nothing charged) when
// they do not fit what is left of from's budget.
func (b *serveBudget) takeBytes(from uint32, now uint64, n int) bool {
	p := b.peer(from, now)
	if int64(n)*b.unit() > p.bytes {
		return false
	}
	p.bytes -= int64(n) * b.unit()
	return true
}

// batchBytes is the encoded size of a batch, as the budgets count it.
func batchBytes(batch []*wire.Signed) int {
	n := 0
	for _, s := range batch {
		n += requestSize(s)
	}
	return n
}
