package p2p

import (
	"math/rand/v2"
	"sync"
	"time"
)

// frameQueue is a bounded FIFO of outbound frames for one peer. push never
// blocks: when the queue is full the newest frame (the one being pushed) is
// refused, so frames already queued keep their place.
type frameQueue struct {
	frames chan []byte
}

func newFrameQueue(capacity int) *frameQueue {
	return &frameQueue{frames: make(chan []byte, capacity)}
}

// push enqueues frame and reports whether there was room for it.
func (q *frameQueue) push(frame []byte) bool {
	select {
	case q.frames <- frame:
		return true
	default:
		return false
	}
}

// drainBatch appends to batch the frames already queued on q, up to about
// writeBufferSize bytes in all.
func drainBatch(batch [][]byte, q *frameQueue) [][]byte {
	size := 0
	for _, f := range batch {
		size += len(f)
	}
	for size < writeBufferSize {
		select {
		case f := <-q.frames:
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
