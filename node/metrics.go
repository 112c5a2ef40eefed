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
	slowPrimary       prometheus.Gauge // the core's count of slow-primary suspicions
	serveLimited      prometheus.Gauge // the core's count of batches left out of Fetch answers over a peer's serve budget

	checkpointsStable     prometheus.Counter
	stateTransfers        prometheus.Counter
	stateTransferRejected *prometheus.CounterVec
	stateTransferSeconds  prometheus.Histogram
	stateServedBytes      prometheus.Counter
	stateReceivedEntries  prometheus.Counter
	transferring          prometheus.Gauge

	viewChanges        prometheus.Counter
	viewChangeAttempts prometheus.Counter
	viewChangeSeconds  prometheus.Histogram
	viewChanging       prometheus.Gauge

	ops     *opsMetrics
	inbound *inboundMetrics
}

// watchFaultInjections exports a Byzantine filter's fault count.
func (m *metrics) watchFaultInjections(count func() float64) {
	m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pbftnode_fault_injections_total", Help: "Faults this replica injected on purpose (run --byzantine).",
	}, count))
}

// watchDatabaseSize exports the size reported by size.
func (m *metrics) watchDatabaseSize(size func() float64) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbftnode_database_size_bytes", Help: "Size of the replica's database files.",
	}, size))
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
		slowPrimary: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_slow_primary_suspicions", Help: "Times this replica's slow-primary monitor suspected the primary (since start).",
		}),
		serveLimited: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_serve_limited_batches", Help: "Batches left out of Fetch answers because the requesting peer's serve budget was spent (since start).",
		}),
		retransmissions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_retransmissions", Help: "Times this replica resent its messages after a period without progress.",
		}),
		checkpointsStable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_checkpoints_stable_total", Help: "Checkpoints that became stable (2f+1 matching signed votes).",
		}),
		stateTransfers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_state_transfers_total", Help: "State transfers started because the replica was behind a stable checkpoint.",
		}),
		stateTransferRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_state_transfer_peer_failures_total", Help: "Peers given up on during state transfer, by reason (digest_mismatch means a wrong snapshot).",
		}, []string{"reason"}),
		stateTransferSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pbftnode_state_transfer_seconds", Help: "Duration of completed state transfers.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		stateServedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_state_served_bytes_total", Help: "Snapshot bytes served to replicas doing state transfer.",
		}),
		stateReceivedEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_state_received_entries_total", Help: "Snapshot entries received by state transfer.",
		}),
		transferring: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_state_transfer_in_progress", Help: "1 while a state transfer is in progress.",
		}),
	}
	m.viewChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbftnode_view_changes_total", Help: "Views this replica entered through a NEW-VIEW (completed view changes).",
	})
	m.viewChangeAttempts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbftnode_view_change_attempts_total", Help: "VIEW-CHANGEs this replica sent (a timeout, or f+1 others asking).",
	})
	m.viewChangeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pbftnode_view_change_seconds", Help: "Time from this replica's first VIEW-CHANGE to entering the new view.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	m.viewChanging = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pbftnode_view_changing", Help: "1 while the replica is changing views (not ordering).",
	})
	m.registry.MustRegister(m.viewChanges, m.viewChangeAttempts, m.viewChangeSeconds, m.viewChanging)
	m.ops = newOpsMetrics(m.registry)
	m.inbound = newInboundMetrics(m.registry)
	m.registry.MustRegister(
		m.checkpointsStable, m.stateTransfers, m.stateTransferRejected, m.stateTransferSeconds,
		m.stateServedBytes, m.stateReceivedEntries, m.transferring,
	)
	m.registry.MustRegister(
		m.executedSequence, m.view, m.stableCheckpoint, m.committedRequests, m.committedBatches,
		m.batchSize, m.received, m.sent, m.dropped, m.clientReplies, m.persistSeconds, m.inboxDepth,
		m.retransmissions,
		m.slowPrimary,
		m.serveLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// MetricValue returns the value of an unlabelled counter or gauge of this
// replica, or the sum over all its label values (0 if absent). For tests
// and status tools.
func (n *Node) MetricValue(name string) float64 {
	families, err := n.metrics.registry.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}
