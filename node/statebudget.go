package node

import (
	"slices"
	"time"

	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// ChunkServer is a snapshot server's bound on what it sends each
// requesting replica (the budget below), for the goroutine that answers
// state requests in both runtimes; it is not safe for concurrent use.
// Serve answers a request and the rest of its window within the
// requester's budget, deferring what does not fit; RetryC fires while
// something is deferred, and Retry then answers what the refilled buckets
// admit.
type ChunkServer struct {
	budget *chunkBudget
	// retry is armed only while requests are deferred (nil: not armed).
	retry *time.Timer
}

// NewChunkServer returns a ChunkServer with the default budget.
func NewChunkServer() *ChunkServer { return &ChunkServer{budget: newChunkBudget()} }

// ChunkAnswer answers one state request with one chunk (sent by it) and
// returns the bytes it sent and the chunk (nil when it sent none).
type ChunkAnswer func(StateRequest) (sent int, chunk *wire.StateChunk)

// Serve answers r with answer, then the rest of its window
// (statetransfer.Rest: at most statetransfer.MaxChunksPerRequest chunks)
// one chunk at a time, each charged to and admitted by r.From's budget. It
// reports false when r, or the rest of its window, was deferred (the
// caller counts a drop): the latest deferred request of each replica waits
// for Retry.
func (s *ChunkServer) Serve(r StateRequest, now time.Time, answer ChunkAnswer) bool {
	return s.budget.admit(r, now) && !s.budget.window(r, now, answer)
}

// RetryC returns a channel that fires once deferred requests may be due,
// or nil when none is deferred.
func (s *ChunkServer) RetryC() <-chan time.Time {
	if s.retry == nil {
		if len(s.budget.deferred) == 0 {
			return nil
		}
		s.retry = time.NewTimer(stateServeRetry)
	}
	return s.retry.C
}

// Retry answers, after RetryC fired, the deferred requests whose buckets
// have refilled, in replica order; it reports how many of them (or of
// their windows' rests) were deferred again.
func (s *ChunkServer) Retry(now time.Time, answer ChunkAnswer) (deferred int) {
	s.retry = nil
	for _, r := range s.budget.due(now) {
		if s.budget.window(r, now, answer) {
			deferred++
		}
	}
	return deferred
}

// Stop releases the retry timer.
func (s *ChunkServer) Stop() {
	if s.retry != nil {
		s.retry.Stop()
	}
}

// State-transfer chunk requests are about 50 bytes and each answer up to
// StateChunkBytes: without a bound one replica could make another send it
// its whole state over and over (a faulty one on purpose, in either
// runtime a restarting or confused one by accident). Each requesting replica has a token
// bucket of stateServeRequestsPerSecond requests and
// stateServeBytesPerSecond bytes, holding at most one second's worth. A
// request that finds the bucket empty is deferred, not dropped (a
// requester asks for one window of chunks at a time and moves to another
// peer on a timeout, so dropping would stall an honest transfer of a
// large state); so is the rest of a window that does not fit:
// the server keeps the latest deferred request of each replica, answers it
// when the bucket has refilled, and counts every request it defers or
// replaces (pbftnode_messages_dropped_total{reason="rate_limited"}). An
// honest transfer of a few MiB fits in the first second's burst; a larger
// one proceeds at the budget's rate.
const (
	stateServeBytesPerSecond    = 32 << 20
	stateServeRequestsPerSecond = 64
	stateServeRetry             = 50 * time.Millisecond
)

// chunkBudget is the snapshot server's per-replica budget. It is used by
// the server's goroutine only.
type chunkBudget struct {
	bytesPerSecond, requestsPerSecond float64
	peers                             map[uint32]*chunkBucket
	deferred                          map[uint32]StateRequest
}

type chunkBucket struct {
	bytes, requests float64
	refilled        time.Time
}

func newChunkBudget() *chunkBudget {
	return &chunkBudget{bytesPerSecond: stateServeBytesPerSecond, requestsPerSecond: stateServeRequestsPerSecond,
		peers: make(map[uint32]*chunkBucket), deferred: make(map[uint32]StateRequest)}
}

// bucket returns from's bucket refilled up to now. from is a replica
// index checked by the verifier, so the map holds at most N entries.
func (b *chunkBudget) bucket(from uint32, now time.Time) *chunkBucket {
	p := b.peers[from]
	if p == nil {
		p = &chunkBucket{bytes: b.bytesPerSecond, requests: b.requestsPerSecond, refilled: now}
		b.peers[from] = p
		return p
	}
	if dt := now.Sub(p.refilled).Seconds(); dt > 0 {
		p.bytes = min(b.bytesPerSecond, p.bytes+dt*b.bytesPerSecond)
		p.requests = min(b.requestsPerSecond, p.requests+dt*b.requestsPerSecond)
		p.refilled = now
	}
	return p
}

// admit reports whether r may be answered now, taking a request token if
// so; otherwise r becomes from's deferred request (replacing an older one).
func (b *chunkBudget) admit(r StateRequest, now time.Time) bool {
	p := b.bucket(r.From, now)
	if _, waiting := b.deferred[r.From]; !waiting && p.requests >= 1 && p.bytes > 0 {
		p.requests--
		return true
	}
	b.deferred[r.From] = r
	return false
}

// charge takes the bytes sent to from out of its bucket (it may go into
// debt: a chunk's size is known only once read).
func (b *chunkBudget) charge(from uint32, sent int) {
	if p := b.peers[from]; p != nil {
		p.bytes -= float64(sent)
	}
}

// due returns the deferred requests whose buckets have refilled, taking a
// request token for each, in replica order.
func (b *chunkBudget) due(now time.Time) []StateRequest {
	var out []StateRequest
	for from, r := range b.deferred {
		if p := b.bucket(from, now); p.requests >= 1 && p.bytes > 0 {
			p.requests--
			delete(b.deferred, from)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, c StateRequest) int { return int(a.From) - int(c.From) })
	return out
}

// window answers r (already admitted) with answer, then the rest of its
// window chunk by chunk while the budget admits it, charging each chunk's
// bytes; it reports whether a rest was deferred.
func (b *chunkBudget) window(r StateRequest, now time.Time, answer ChunkAnswer) (deferred bool) {
	for {
		sent, chunk := answer(r)
		b.charge(r.From, sent)
		rest := statetransfer.Rest(r.Req, chunk)
		if rest == nil {
			return false
		}
		r = StateRequest{From: r.From, Req: rest}
		if !b.admit(r, now) {
			return true
		}
	}
}
