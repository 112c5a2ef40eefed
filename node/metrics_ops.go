package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/protocol"
)

// opsMetrics are the operator-facing metrics beyond the protocol gauges:
// bytes by message type, signature checks, phase latencies and the
// transport's counters.
type opsMetrics struct {
	bytesSent     *prometheus.CounterVec
	bytesReceived *prometheus.CounterVec
	verified      prometheus.Counter
	rejected      prometheus.Counter
	phase         *prometheus.HistogramVec
}

func newOpsMetrics(reg *prometheus.Registry) *opsMetrics {
	m := &opsMetrics{
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_message_bytes_sent_total", Help: "Encoded bytes of protocol messages sent, by type (a broadcast counts once).",
		}, []string{"type"}),
		bytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_message_bytes_received_total", Help: "Encoded bytes of verified protocol messages received, by type.",
		}, []string{"type"}),
		verified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_signatures_verified_total", Help: "Replica frames and client requests whose signatures checked out.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_signatures_rejected_total", Help: "Replica frames and client requests refused for a bad signature.",
		}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pbftnode_phase_seconds",
			Help:    "Time from a sequence's pre-prepare (sent or accepted here) to this replica's prepared (its commit sent), committed and executed.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"phase"}),
	}
	reg.MustRegister(m.bytesSent, m.bytesReceived, m.verified, m.rejected, m.phase)
	return m
}

// watchTransport exports the transport's counters.
func (m *metrics) watchTransport(stats func() p2p.Stats) {
	counter := func(name, help string, get func(p2p.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(get(stats())) })
	}
	m.registry.MustRegister(
		counter("pbftnode_p2p_frames_sent_total", "Frames written to streams.", func(s p2p.Stats) uint64 { return s.FramesSent }),
		counter("pbftnode_p2p_frames_received_total", "Frames read from streams.", func(s p2p.Stats) uint64 { return s.FramesReceived }),
		counter("pbftnode_p2p_bytes_sent_total", "Frame bytes sent.", func(s p2p.Stats) uint64 { return s.BytesSent }),
		counter("pbftnode_p2p_bytes_received_total", "Frame bytes received.", func(s p2p.Stats) uint64 { return s.BytesReceived }),
		counter("pbftnode_p2p_dropped_queue_full_total", "Outbound frames dropped because a peer's bounded queue was full.", func(s p2p.Stats) uint64 { return s.DroppedQueueFull }),
		counter("pbftnode_p2p_dropped_inbound_full_total", "Client host: replies dropped because the Replies channel was full (a replica counts inbound drops in pbftnode_p2p_inbound_dropped_total{class}).", func(s p2p.Stats) uint64 { return s.DroppedInboundFull }),
		counter("pbftnode_p2p_rejected_oversized_total", "Frames refused for exceeding the size limit.", func(s p2p.Stats) uint64 { return s.RejectedOversized }),
		counter("pbftnode_p2p_rate_limited_total", "Client frames dropped because the client exceeded its rate limit.", func(s p2p.Stats) uint64 { return s.RateLimited }),
		counter("pbftnode_p2p_rejected_peers_total", "Connections and streams refused: replica streams from non-members, clients not on the allowlist.", func(s p2p.Stats) uint64 { return s.RejectedPeers }),
	)
	m.watchInbound(stats)
}

// phaseClock remembers when each sequence's pre-prepare was seen here, to
// time its phases. It holds at most one entry per sequence in the window.
type phaseClock struct {
	started  map[uint64]time.Time
	prepared map[uint64]bool
}

func newPhaseClock() *phaseClock {
	return &phaseClock{started: make(map[uint64]time.Time), prepared: make(map[uint64]bool)}
}

// observe records the phases a Ready shows: pre-prepares persisted,
// commits sent (prepared), batches committed.
func (c *phaseClock) observe(rd *protocol.Ready, m *opsMetrics, now time.Time) {
	for _, e := range rd.Persist {
		if e.Kind == protocol.KindPrePrepare {
			if _, ok := c.started[e.Sequence]; !ok {
				c.started[e.Sequence] = now
			}
		}
		if e.Kind == protocol.KindCommit {
			if t, ok := c.started[e.Sequence]; ok && !c.prepared[e.Sequence] {
				c.prepared[e.Sequence] = true
				m.phase.WithLabelValues("prepared").Observe(now.Sub(t).Seconds())
			}
		}
	}
	for _, b := range rd.Committed {
		if t, ok := c.started[b.Sequence]; ok {
			m.phase.WithLabelValues("committed").Observe(now.Sub(t).Seconds())
		}
	}
}

// executed records the executed phase of seq and forgets it.
func (c *phaseClock) executed(seq uint64, m *opsMetrics, now time.Time) {
	if t, ok := c.started[seq]; ok {
		m.phase.WithLabelValues("executed").Observe(now.Sub(t).Seconds())
	}
	delete(c.started, seq)
	delete(c.prepared, seq)
}

// forgetBelow drops sequences at or below a stable checkpoint (those a
// state transfer or view change skipped).
func (c *phaseClock) forgetBelow(seq uint64) {
	for s := range c.started {
		if s <= seq {
			delete(c.started, s)
			delete(c.prepared, s)
		}
	}
}
