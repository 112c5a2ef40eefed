package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Defaults of the per-key ClientProtocol stream-opening limit. A client
// process opens one stream per replica when it starts (and again after a
// broken stream), so 8 processes sharing a key fit the burst at once, and a
// key reconnecting every few seconds fits the rate. A key that opens a new
// session for every request (the client-flood attack) is held to the rate.
const (
	DefaultClientStreamRate  = 8.0 // streams per second per established key
	DefaultClientStreamBurst = 32
	// Keys not yet established share one bucket, so fresh keys buy no
	// extra streams; it is wider than one key's to let many honest
	// clients start at once.
	DefaultNewcomerStreamRate  = 64.0
	DefaultNewcomerStreamBurst = 256
	// DefaultStreamLimiterKeys bounds the keys whose buckets are
	// remembered, least recently used forgotten first. A bucket outlives
	// its key's session, so closing and reopening streams refills nothing.
	DefaultStreamLimiterKeys = 4096
)

// StreamLimits bounds how fast client keys may open ClientProtocol streams
// on a replica host. A stream over the limit is reset before any frame is
// read and counted in Stats.ClientStreamsRefused. Zero fields take the
// defaults; a negative ClientRate switches the limit off.
type StreamLimits struct {
	// ClientRate and ClientBurst: the token bucket of one established key
	// (see Host.MarkClientEstablished).
	ClientRate  float64
	ClientBurst int
	// NewcomerRate and NewcomerBurst: the one bucket all keys not yet
	// established share.
	NewcomerRate  float64
	NewcomerBurst int
	// Keys bounds how many established keys' buckets are remembered.
	Keys int
}

func (l StreamLimits) withDefaults() StreamLimits {
	if l.ClientRate == 0 {
		l.ClientRate = DefaultClientStreamRate
	}
	if l.NewcomerRate == 0 {
		l.NewcomerRate = DefaultNewcomerStreamRate
	}
	l.ClientBurst = orDefault(l.ClientBurst, DefaultClientStreamBurst)
	l.NewcomerBurst = orDefault(l.NewcomerBurst, DefaultNewcomerStreamBurst)
	l.Keys = orDefault(l.Keys, DefaultStreamLimiterKeys)
	return l
}

// streamGate is the per-key token buckets of ClientProtocol stream opens:
// one per established key (an LRU of at most limits.Keys), one shared by
// all other keys. A nil *streamGate allows everything.
type streamGate struct {
	limits      StreamLimits
	now         func() time.Time
	established func(peer.ID) bool

	mu        sync.Mutex
	newcomers *rate.Limiter
	buckets   *lruMap[*rate.Limiter] // established keys' own buckets
}

// newStreamGate returns the gate for limits (defaults applied), or nil when
// the limit is off. established reports whether a key has earned its own
// bucket; it is called without the gate's lock held.
func newStreamGate(limits StreamLimits, now func() time.Time, established func(peer.ID) bool) *streamGate {
	l := limits.withDefaults()
	if l.ClientRate < 0 {
		return nil
	}
	return &streamGate{
		limits:      l,
		now:         now,
		established: established,
		newcomers:   rate.NewLimiter(rate.Limit(max(0, l.NewcomerRate)), l.NewcomerBurst),
		buckets:     newLRUMap[*rate.Limiter](l.Keys),
	}
}

// allow takes one token from client's bucket and reports whether there was
// one.
func (g *streamGate) allow(client peer.ID) bool {
	if g == nil {
		return true
	}
	established := g.established(client)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if lim, ok := g.buckets.get(client); ok {
		return lim.AllowN(now, 1)
	}
	if !established {
		return g.newcomers.AllowN(now, 1)
	}
	lim := rate.NewLimiter(rate.Limit(g.limits.ClientRate), g.limits.ClientBurst)
	g.buckets.put(client, lim)
	return lim.AllowN(now, 1)
}
