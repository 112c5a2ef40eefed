package node

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are one replica's Prometheus metrics, in a registry of its own
// (several replicas can share a process, as in the demo). Every runtime
// exports the same names, so dashboards work for each; a runtime sets
// the fields that apply to it and leaves the others at zero. The fields
// are safe for concurrent use (Prometheus collectors).
type Metrics struct {
	Registry *prometheus.Registry
	// labelled caches the counters of the labelled vectors the hot paths
	// count into (labelKey -> prometheus.Counter): a few label values,
	// each resolved by WithLabelValues once instead of per message.
	labelled sync.Map

	ExecutedSequence  prometheus.Gauge
	View              prometheus.Gauge
	StableCheckpoint  prometheus.Gauge
	CommittedRequests prometheus.Counter
	CommittedBatches  prometheus.Counter
	BatchSize         prometheus.Histogram
	Received          *prometheus.CounterVec
	Sent              *prometheus.CounterVec
	Dropped           *prometheus.CounterVec
	ClientReplies     prometheus.Counter
	PersistSeconds    prometheus.Histogram
	LogWrites         prometheus.Counter // protocol log writes not synced (a later synced append covers them)
	PreparesWithheld  prometheus.Gauge   // the core's count of PREPAREs not sent in the view it restored
	InboxDepth        prometheus.Gauge
	Retransmissions   prometheus.Gauge
	SlowPrimary       prometheus.Gauge // the core's count of slow-primary suspicions
	ServeLimited      prometheus.Gauge // the core's count of batches left out of Fetch answers over a peer's serve budget
	// CommitsByChannel and RelayRefused: the core's counts of COMMITs
	// taken on their author's session's word, and of those whose
	// signature failed the check before a relay.
	CommitsByChannel, RelayRefused prometheus.Gauge

	CheckpointsStable     prometheus.Counter
	StateTransfers        prometheus.Counter
	StateTransferRejected *prometheus.CounterVec
	StateTransferSeconds  prometheus.Histogram
	StateServedBytes      prometheus.Counter
	StateReceivedEntries  prometheus.Counter
	Transferring          prometheus.Gauge

	ViewChanges        prometheus.Counter
	ViewChangeAttempts prometheus.Counter
	ViewChangeSeconds  prometheus.Histogram
	ViewChanging       prometheus.Gauge

	Ops     *OpsMetrics
	Inbound *InboundMetrics
}

// WatchFaultInjections exports a Byzantine filter's fault count.
func (m *Metrics) WatchFaultInjections(count func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pbftnode_fault_injections_total", Help: "Faults this replica injected on purpose (run --byzantine).",
	}, count))
}

// WatchDatabaseSize exports the size reported by size.
func (m *Metrics) WatchDatabaseSize(size func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbftnode_database_size_bytes", Help: "Size of the replica's database files.",
	}, size))
}

// NewMetrics returns a replica's metrics in a fresh registry, with the Go
// and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		ExecutedSequence: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_executed_sequence", Help: "Highest sequence number executed by this replica.",
		}),
		View: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_view", Help: "Current view (PBFT) or term (Raft).",
		}),
		StableCheckpoint: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_stable_checkpoint", Help: "Sequence number of the latest stable checkpoint (the low watermark).",
		}),
		CommittedRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_committed_requests_total", Help: "Client requests committed and executed.",
		}),
		CommittedBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_committed_batches_total", Help: "Batches committed and executed.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pbftnode_batch_size_requests", Help: "Requests per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_messages_received_total", Help: "Verified protocol messages received, by type.",
		}, []string{"type"}),
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_messages_sent_total", Help: "Protocol messages sent, by type (a broadcast counts once).",
		}, []string{"type"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_messages_dropped_total", Help: "Messages and requests dropped, by reason.",
		}, []string{"reason"}),
		ClientReplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_client_replies_total", Help: "Replies sent to clients (including cached ones).",
		}),
		PersistSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pbftnode_persist_seconds", Help: "Time to durably write the protocol log before sending.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		InboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_inbox_depth", Help: "Verified inputs waiting for the event loop.",
		}),
		SlowPrimary: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_slow_primary_suspicions", Help: "Times this replica's slow-primary monitor suspected the primary (since start).",
		}),
		LogWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_log_writes_unsynced_total", Help: "Protocol log writes made without fdatasync, for Readies whose messages could all go before it (the next synced append, before any COMMIT, makes them durable).",
		}),
		PreparesWithheld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_prepares_withheld", Help: "PREPAREs this replica did not send in the view it restored after a restart (since start).",
		}),
		ServeLimited: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_serve_limited_batches", Help: "Batches left out of Fetch answers because the requesting peer's serve budget was spent (since start).",
		}),
		CommitsByChannel: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_commits_by_channel", Help: "COMMITs counted without a signature check, on the word of their author's own authenticated session (since start).",
		}),
		RelayRefused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_commits_relay_refused", Help: "COMMITs taken on their author's session's word whose signature then failed the check made before relaying them (never relayed; the author is faulty; since start).",
		}),
		Retransmissions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_retransmissions", Help: "Times this replica resent its messages after a period without progress.",
		}),
		CheckpointsStable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_checkpoints_stable_total", Help: "Checkpoints that became stable (2f+1 matching signed votes).",
		}),
		StateTransfers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_state_transfers_total", Help: "State transfers started because the replica was behind a stable checkpoint.",
		}),
		StateTransferRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_state_transfer_peer_failures_total", Help: "Peers given up on during state transfer, by reason (digest_mismatch means a wrong snapshot).",
		}, []string{"reason"}),
		StateTransferSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pbftnode_state_transfer_seconds", Help: "Duration of completed state transfers.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		StateServedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_state_served_bytes_total", Help: "Snapshot bytes served to replicas doing state transfer.",
		}),
		StateReceivedEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_state_received_entries_total", Help: "Snapshot entries received by state transfer.",
		}),
		Transferring: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbftnode_state_transfer_in_progress", Help: "1 while a state transfer is in progress.",
		}),
	}
	m.ViewChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbftnode_view_changes_total", Help: "Views this replica entered through a NEW-VIEW (completed view changes).",
	})
	m.ViewChangeAttempts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pbftnode_view_change_attempts_total", Help: "VIEW-CHANGEs this replica sent (a timeout, or f+1 others asking).",
	})
	m.ViewChangeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pbftnode_view_change_seconds", Help: "Time from this replica's first VIEW-CHANGE to entering the new view.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	})
	m.ViewChanging = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pbftnode_view_changing", Help: "1 while the replica is changing views (not ordering).",
	})
	m.Registry.MustRegister(m.ViewChanges, m.ViewChangeAttempts, m.ViewChangeSeconds, m.ViewChanging)
	m.Ops = newOpsMetrics(m.Registry)
	m.Inbound = newInboundMetrics(m.Registry)
	m.Registry.MustRegister(
		m.CheckpointsStable, m.StateTransfers, m.StateTransferRejected, m.StateTransferSeconds,
		m.StateServedBytes, m.StateReceivedEntries, m.Transferring,
	)
	m.Registry.MustRegister(
		m.ExecutedSequence, m.View, m.StableCheckpoint, m.CommittedRequests, m.CommittedBatches,
		m.BatchSize, m.Received, m.Sent, m.Dropped, m.ClientReplies, m.PersistSeconds, m.InboxDepth,
		m.Retransmissions,
		m.SlowPrimary,
		m.ServeLimited, m.LogWrites, m.PreparesWithheld, m.CommitsByChannel, m.RelayRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Value returns the value of an unlabelled counter or gauge of this
// replica, or the sum over all its label values (0 if absent); for a
// histogram, its sample count. For tests and status tools.
func (m *Metrics) Value(name string) float64 { return m.ValueWith(name, "", "") }

// ValueWith is Value summed only over the series whose label is value
// (every series when label is empty).
func (m *Metrics) ValueWith(name, label, value string) float64 {
	families, err := m.Registry.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matches := label == ""
			for _, p := range m.GetLabel() {
				if p.GetName() == label {
					matches = p.GetValue() == value
				}
			}
			if !matches {
				continue
			}
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

// Drop counts a message or request dropped for reason and logs it at
// debug level with args.
func (m *Metrics) Drop(log *slog.Logger, reason string, args ...any) {
	m.labelledCounter(m.Dropped, reason).Inc()
	log.Debug("dropped", append([]any{"reason", reason}, args...)...)
}

// CountSent counts one protocol message of kind sent, encoded in bytes
// bytes (a broadcast counts once).
func (m *Metrics) CountSent(kind string, bytes int) {
	m.labelledCounter(m.Sent, kind).Inc()
	m.labelledCounter(m.Ops.BytesSent, kind).Add(float64(bytes))
}

// CountReceived counts one protocol message of kind handed to the
// protocol (pbftnode_messages_received_total).
func (m *Metrics) CountReceived(kind string) {
	m.labelledCounter(m.Received, kind).Inc()
}

// CountReceivedBytes counts the bytes of one protocol message of kind
// that passed verification (pbftnode_message_bytes_received_total).
func (m *Metrics) CountReceivedBytes(kind string, bytes int) {
	m.labelledCounter(m.Ops.BytesReceived, kind).Add(float64(bytes))
}

// labelKey names one counter of a labelled vector in Metrics.labelled.
type labelKey struct {
	vec   *prometheus.CounterVec
	label string
}

// labelledCounter returns vec's counter for label, from the cache after
// the first time.
func (m *Metrics) labelledCounter(vec *prometheus.CounterVec, label string) prometheus.Counter {
	key := labelKey{vec, label}
	if c, ok := m.labelled.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c := vec.WithLabelValues(label)
	m.labelled.Store(key, c)
	return c
}

// SetChanging sets the gauges of what keeps a replica from ordering:
// pbftnode_view_changing (changing views, or no known leader) and
// pbftnode_state_transfer_in_progress.
func (m *Metrics) SetChanging(changingView, transferring bool) {
	m.ViewChanging.Set(flag(changingView))
	m.Transferring.Set(flag(transferring))
}

// flag is a boolean as a gauge value.
func flag(on bool) float64 {
	if on {
		return 1
	}
	return 0
}
