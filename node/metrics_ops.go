package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/p2p"
)

// OpsMetrics are the operator-facing metrics beyond the protocol gauges:
// bytes by message type, signature checks, phase latencies and the
// transport's counters.
type OpsMetrics struct {
	BytesSent     *prometheus.CounterVec
	BytesReceived *prometheus.CounterVec
	Verified      prometheus.Counter
	Rejected      prometheus.Counter
	Phase         *prometheus.HistogramVec
}

func newOpsMetrics(reg *prometheus.Registry) *OpsMetrics {
	m := &OpsMetrics{
		BytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_message_bytes_sent_total", Help: "Encoded bytes of protocol messages sent, by type (a broadcast counts once).",
		}, []string{"type"}),
		BytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_message_bytes_received_total", Help: "Encoded bytes of verified protocol messages received, by type.",
		}, []string{"type"}),
		Verified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_signatures_verified_total", Help: "Replica frames and client requests whose signatures checked out.",
		}),
		Rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_signatures_rejected_total", Help: "Replica frames and client requests refused for a bad signature.",
		}),
		Phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pbftnode_phase_seconds",
			Help:    "Time from a sequence's pre-prepare (sent or accepted here) to this replica's prepared (its commit sent), committed and executed.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"phase"}),
	}
	reg.MustRegister(m.BytesSent, m.BytesReceived, m.Verified, m.Rejected, m.Phase)
	return m
}

// WatchTransport exports the transport's counters.
func (m *Metrics) WatchTransport(stats func() p2p.Stats) {
	counter := func(name, help string, get func(p2p.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(get(stats())) })
	}
	m.Registry.MustRegister(
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

// WatchApplication exports an application's counters (an
// execution.CounterReporter, such as an application run by apphost) as
// pbftnode_application_<name>_total, and, for one whose availability can
// change (execution.HealthReporter), pbftnode_application_available.
func (m *Metrics) WatchApplication(a execution.Application) {
	if r, ok := a.(execution.CounterReporter); ok {
		for i, c := range r.Counters() {
			m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pbftnode_application_" + c.Name + "_total", Help: c.Help,
			}, func() float64 { return float64(r.Counters()[i].Value) }))
		}
	}
	if h, ok := a.(execution.HealthReporter); ok {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbftnode_application_available", Help: "1 while the application answers, 0 while the replica waits for it (see /readyz for why).",
		}, func() float64 {
			if h.Health() != nil {
				return 0
			}
			return 1
		}))
	}
}
