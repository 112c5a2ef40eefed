package node

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/protocol"
)

// InboundMetrics count what the verification path refused before or
// instead of verifying: frames dropped by the cheap pre-check, and the
// backoffs of senders that proved themselves faulty.
type InboundMetrics struct {
	Prechecked            *prometheus.CounterVec
	FaultyReplicaBackoffs *prometheus.CounterVec
	FaultyClientBackoffs  prometheus.Counter
}

func newInboundMetrics(reg *prometheus.Registry) *InboundMetrics {
	m := &InboundMetrics{
		Prechecked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_prechecked_dropped_total",
			Help: "Replica messages dropped before any signature check because the core would drop them anyway, by reason (stale, outside_window, already_prepared).",
		}, []string{"reason"}),
		FaultyReplicaBackoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbftnode_faulty_replica_backoffs_total",
			Help: "Backoffs of a replica whose frame on its own stream carried a bad signature, by replica.",
		}, []string{"replica"}),
		FaultyClientBackoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbftnode_faulty_client_backoffs_total",
			Help: "Backoffs of a client key whose request on its own stream carried a bad signature.",
		}),
	}
	reg.MustRegister(m.Prechecked, m.FaultyReplicaBackoffs, m.FaultyClientBackoffs)
	return m
}

// watchInbound exports the transport's inbound-isolation counters.
func (m *Metrics) watchInbound(stats func() p2p.Stats) {
	for class := p2p.ClassReplica; class <= p2p.ClassNewcomer; class++ {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "pbftnode_p2p_inbound_dropped_total",
			Help:        "Received frames dropped because their own source's inbound queue was full, by source class (replica, client, newcomer).",
			ConstLabels: prometheus.Labels{"class": class.String()},
		}, func() float64 { return float64(stats().DroppedInbound[class]) }))
	}
	counter := func(name, help string, get func(p2p.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(get(stats())) })
	}
	m.Registry.MustRegister(
		counter("pbftnode_p2p_dropped_faulty_total", "Received frames dropped unverified because their sender is backed off as faulty.", func(s p2p.Stats) uint64 { return s.DroppedFaulty }),
		counter("pbftnode_p2p_incomplete_frame_timeouts_total", "Streams reset because a frame that had begun arriving missed its deadline.", func(s p2p.Stats) uint64 { return s.IncompleteFrameTimeouts }),
		counter("pbftnode_p2p_client_bytes_paced_total", "Times a client stream's reader waited because its key had used its inbound byte budget (the key's further bytes wait in its own flow control).", func(s p2p.Stats) uint64 { return s.ClientBytesPaced }),
		counter("pbftnode_p2p_client_streams_refused_total", "Client streams reset unread because their key opened streams faster than its stream-opening limit.", func(s p2p.Stats) uint64 { return s.ClientStreamsRefused }),
		counter("pbftnode_p2p_rejected_partial_total", "Client streams reset for exceeding the bytes of incomplete frames allowed per key or in all.", func(s p2p.Stats) uint64 { return s.RejectedPartial }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbftnode_faulty_replicas_backed_off", Help: "Replicas whose frames are dropped unverified now, backed off as provably faulty.",
		}, func() float64 { return float64(stats().BackedOffReplicas) }),
	)
}

// Refused counts and handles a frame the verifier refused: a pre-check
// drop is counted by reason; a bad signature on a sender's own stream
// backs the sender off (host.ReportFaulty) and says so in a metric and a
// log line.
func Refused(host *p2p.Host, m *Metrics, log *slog.Logger, f p2p.Frame, err error) {
	if errors.Is(err, protocol.ErrNotAdmitted) {
		m.Inbound.Prechecked.WithLabelValues(ReasonOf(err)).Inc()
	}
	if !errors.Is(err, protocol.ErrBadSignature) {
		return
	}
	// A correct replica sends only what it signed or verified, a correct
	// client only what it signed: the stream's sender is faulty.
	period, started := host.ReportFaulty(f)
	if !started {
		return
	}
	if f.FromIndex >= 0 {
		m.Inbound.FaultyReplicaBackoffs.WithLabelValues(strconv.Itoa(f.FromIndex)).Inc()
		log.Warn("replica sent a bad signature on its own stream: dropping its frames unverified",
			"from", f.FromIndex, "for", period, "err", err)
		return
	}
	m.Inbound.FaultyClientBackoffs.Inc()
	log.Warn("client key sent a bad signature on its own stream: dropping its frames unverified",
		"client", f.From, "for", period, "err", err)
}
