package p2p

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// frameQueue is a bounded FIFO of outbound frames for one peer, bounded
// in frames and (when maxBytes > 0) in bytes. push never blocks: when the
// queue is full the newest frame (the one being pushed) is refused, so
// frames already queued keep their place. Whoever receives from frames
// must call taken for each frame.
type frameQueue struct {
	frames   chan []byte
	bytes    atomic.Int64
	maxBytes int64 // 0: bounded in frames only
}

func newFrameQueue(capacity, maxBytes int) *frameQueue {
	return &frameQueue{frames: make(chan []byte, capacity), maxBytes: int64(maxBytes)}
}

// push enqueues frame and reports whether there was room for it. A frame
// alone larger than maxBytes is accepted into an empty queue, so the
// byte bound never refuses every frame of some size.
func (q *frameQueue) push(frame []byte) bool {
	n := int64(len(frame))
	if q.maxBytes > 0 {
		if after := q.bytes.Add(n); after > q.maxBytes && after != n {
			q.bytes.Add(-n)
			return false
		}
	}
	select {
	case q.frames <- frame:
		return true
	default:
		if q.maxBytes > 0 {
			q.bytes.Add(-n)
		}
		return false
	}
}

// taken records that frame left the queue.
func (q *frameQueue) taken(frame []byte) {
	if q.maxBytes > 0 {
		q.bytes.Add(-int64(len(frame)))
	}
}

// drainBatch appends to batch the frames already queued on q, up to about
// writeBufferSize bytes in all, so a wakeup of the writer becomes one
// buffered write (one yamux frame, one Noise record, one syscall) for
// every frame queued by then. Before it drains it yields the processor
// once (runtime.Gosched): when the writer was woken by the first of a
// burst of frames, the goroutines producing the rest (the event loop's
// replies, a client's concurrent requests) get to queue them first, so
// they share the write. With nothing else runnable the yield returns at
// once, so an idle link adds no delay. The first frame of batch, received
// from q.frames by the caller, must have been passed to taken.
func drainBatch(batch [][]byte, q *frameQueue) [][]byte {
	size := 0
	for _, f := range batch {
		size += len(f)
	}
	runtime.Gosched()
	for size < writeBufferSize {
		select {
		case f := <-q.frames:
			q.taken(f)
			batch = append(batch, f)
			size += len(f)
		default:
			return batch
		}
	}
	return batch
}

// lockedRand serialises access to a *rand.Rand, which is not safe for
// concurrent use, so every peer's backoff can share the injected source.
type lockedRand struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// int64N returns a pseudo-random number in [0, n); n must be positive.
func (r *lockedRand) int64N(n int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rng.Int64N(n)
}

// backoff computes reconnect delays: the nominal delay starts at min,
// doubles after every attempt and is capped at max; each returned delay is
// drawn uniformly from [nominal/2, nominal] so peers that lost a connection
// together do not redial in lockstep. One backoff belongs to one goroutine.
type backoff struct {
	min, max time.Duration
	nominal  time.Duration
	rng      *lockedRand
}

func newBackoff(minDelay, maxDelay time.Duration, rng *lockedRand) *backoff {
	return &backoff{min: minDelay, max: maxDelay, nominal: minDelay, rng: rng}
}

// next returns the delay before the next attempt and grows the nominal delay.
func (b *backoff) next() time.Duration {
	d := b.nominal
	b.nominal = min(2*b.nominal, b.max)
	half := d / 2
	return half + time.Duration(b.rng.int64N(int64(d-half)+1))
}

// reset restarts the sequence at min, after a connection proved healthy.
func (b *backoff) reset() {
	b.nominal = b.min
}
