package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are one replica's Prometheus metrics, in a registry of its own
// (several replicas can share a process, as in the demo).
type metrics struct {
	registry *prometheus.Registry

	executedSequence  prometheus.Gauge
	view              prometheus.Gauge
	stableCheckpoint  prometheus.Gauge
	committedRequests prometheus.Counter
	committedBatches  prometheus.Counter
	batchSize         prometheus.Histogram
	received          *prometheus.CounterVec
	sent              *prometheus.CounterVec
	dropped           *prometheus.CounterVec
	clientReplies     prometheus.Counter
	persistSeconds    prometheus.Histogram
	inboxDepth        prometheus.Gauge
	retransmissions   prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		executedSequence: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_executed_sequence", Help: "Highest sequence number executed by this replica.",
		}),
		view: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_view", Help: "Current view (PBFT) or term (Raft).",
		}),
		stableCheckpoint: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_stable_checkpoint", Help: "Sequence number of the latest stable checkpoint (the low watermark).",
		}),
		committedRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_committed_requests_total", Help: "Client requests committed and executed.",
		}),
		committedBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_committed_batches_total", Help: "Batches committed and executed.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pbftnode_batch_size_requests", Help: "Requests per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_messages_received_total", Help: "Verified protocol messages received, by type.",
		}, []string{"type"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_messages_sent_total", Help: "Protocol messages sent, by type (a broadcast counts once).",
		}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_messages_dropped_total", Help: "Messages and requests dropped, by reason.",
		}, []string{"reason"}),
		clientReplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_client_replies_total", Help: "Replies sent to clients (including cached ones).",
		}),
		persistSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pbftnode_persist_seconds", Help: "Time to durably write the protocol log before sending.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		inboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_inbox_depth", Help: "Verified inputs waiting for the event loop.",
		}),
		retransmissions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_retransmissions", Help: "Times this replica resent its messages after a period without progress.",
		}),
	}
	m.registry.MustRegister(
		m.executedSequence, m.view, m.stableCheckpoint, m.committedRequests, m.committedBatches,
		m.batchSize, m.received, m.sent, m.dropped, m.clientReplies, m.persistSeconds, m.inboxDepth,
		m.retransmissions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
