package pbft

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/replica"
)

// tentativeMetrics publishes the driver's counts of tentative executions
// (replica.TentativeCounts) as pbftnode_tentative_batches_total.
type tentativeMetrics struct {
	executed, committed, discarded prometheus.Counter
	// seen is the driver's count already added.
	seen replica.TentativeCounts
}

func newTentativeMetrics(m *node.Metrics) *tentativeMetrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pbftnode_tentative_batches_total",
		Help: "Batches executed tentatively (outcome executed: answered before they committed), of them written at their commit (committed), and executed again at their commit or replaced (discarded)."},
		[]string{"outcome"})
	m.Registry.MustRegister(vec)
	return &tentativeMetrics{executed: vec.WithLabelValues("executed"), committed: vec.WithLabelValues("committed"),
		discarded: vec.WithLabelValues("discarded")}
}

// publish adds what the driver counted since the last call.
func (t *tentativeMetrics) publish(c replica.TentativeCounts) {
	t.executed.Add(float64(c.Executed - t.seen.Executed))
	t.committed.Add(float64(c.Committed - t.seen.Committed))
	t.discarded.Add(float64(c.Discarded - t.seen.Discarded))
	t.seen = c
}
