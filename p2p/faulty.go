package p2p

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults for backing off a source that proved itself faulty.
const (
	DefaultFaultyBackoffMin = time.Second
	DefaultFaultyBackoffMax = time.Minute
	// maxFaultyClients bounds the client keys the fault book remembers.
	maxFaultyClients = 4096
)

// faultKey names a source: a replica index, or a client key (replica -1).
type faultKey struct {
	replica int
	client  peer.ID
}

func faultKeyOf(f Frame) faultKey {
	if f.FromIndex >= 0 {
		return faultKey{replica: f.FromIndex}
	}
	return faultKey{replica: -1, client: f.From}
}

// faultState is one source's backoff: frames are dropped until until; the
// next backoff, if the source fails again within period of being let
// back, lasts twice as long (up to the maximum).
type faultState struct {
	until  time.Time
	period time.Duration
}

// faultBook remembers the sources backed off as provably faulty. Its
// methods are safe for concurrent use.
type faultBook struct {
	now      func() time.Time
	min, max time.Duration

	mu     sync.Mutex
	states map[faultKey]*faultState
	// latest is the end (Unix nanoseconds) of the latest backoff ever
	// started: once it has passed nobody is backed off, and the lookups
	// skip the lock. Written under mu, read without it.
	latest atomic.Int64
}

func newFaultBook(minPeriod, maxPeriod time.Duration, now func() time.Time) *faultBook {
	return &faultBook{now: now, min: minPeriod, max: maxPeriod, states: make(map[faultKey]*faultState)}
}

// backedOff reports whether f's source is backed off now.
func (b *faultBook) backedOff(f Frame) bool {
	_, ok := b.backedOffUntil(f)
	return ok
}

// backedOffUntil returns when f's source's backoff ends, and whether it
// is backed off now.
func (b *faultBook) backedOffUntil(f Frame) (time.Time, bool) {
	now := b.now()
	if now.UnixNano() >= b.latest.Load() {
		return time.Time{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.states[faultKeyOf(f)]
	if !ok || !now.Before(st.until) {
		return time.Time{}, false
	}
	return st.until, true
}

// pauseWhileBackedOff blocks, without reading the stream, while the
// source of stream frames like f is backed off: the stream's flow-control
// window then fills and the sender can send nothing more on it, so its
// bytes cost neither decryption nor parsing (as Aardvark closes a faulty
// replica's link). It returns an error when the host closes.
func (h *Host) pauseWhileBackedOff(f Frame) error {
	for {
		until, ok := h.faulty.backedOffUntil(f)
		if !ok {
			return nil
		}
		t := time.NewTimer(h.faulty.until(until))
		select {
		case <-h.ctx.Done():
			t.Stop()
			return fmt.Errorf("p2p: host closing: %w", h.ctx.Err())
		case <-t.C:
		}
	}
}

// until converts an instant of the book's clock into a wait from now.
func (b *faultBook) until(t time.Time) time.Duration {
	return max(time.Millisecond, t.Sub(b.now()))
}

// report backs off f's source unless it is backed off already; started
// reports a new backoff, of length period. A source that fails again
// within one period of being let back is backed off twice as long, up to
// the maximum; otherwise it starts again at the minimum.
func (b *faultBook) report(f Frame) (period time.Duration, started bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	key := faultKeyOf(f)
	st, ok := b.states[key]
	switch {
	case ok && now.Before(st.until):
		return st.period, false
	case ok && now.Before(st.until.Add(st.period)):
		st.period = min(2*st.period, b.max)
	case ok:
		st.period = b.min
	default:
		if key.replica < 0 && !b.roomForClient(now) {
			return 0, false
		}
		st = &faultState{period: b.min}
		b.states[key] = st
	}
	st.until = now.Add(st.period)
	if u := st.until.UnixNano(); u > b.latest.Load() {
		b.latest.Store(u)
	}
	return st.period, true
}

// roomForClient makes room for one more client key by forgetting those
// whose backoff and doubling window have passed; it reports whether there
// is room. The caller holds b.mu.
func (b *faultBook) roomForClient(now time.Time) bool {
	clients := 0
	for k := range b.states {
		if k.replica < 0 {
			clients++
		}
	}
	if clients < maxFaultyClients {
		return true
	}
	for k, st := range b.states {
		if k.replica < 0 && !now.Before(st.until.Add(st.period)) {
			delete(b.states, k)
			clients--
		}
	}
	return clients < maxFaultyClients
}

// backedOffReplicas returns the replica indexes backed off now.
func (b *faultBook) backedOffReplicas() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []int
	for k, st := range b.states {
		if k.replica >= 0 && now.Before(st.until) {
			out = append(out, k.replica)
		}
	}
	return out
}

// ReportFaulty records that f's source proved itself faulty: a frame on
// a replica's own authenticated stream, or a client key's, carried a
// signature that does not verify, which a correct sender never sends. The
// source is backed off: its queued frames are dropped unverified (counted
// in Stats.DroppedFaulty), and its streams are not read until the backoff
// ends (a frame read just before is dropped too). started reports that a new backoff of length
// period began (the caller logs and counts it once); a source already
// backed off returns started = false.
func (h *Host) ReportFaulty(f Frame) (period time.Duration, started bool) {
	period, started = h.faulty.report(f)
	if !started {
		return period, false
	}
	h.sched.mu.Lock()
	h.sched.dropQueued(f)
	h.sched.mu.Unlock()
	return period, true
}
