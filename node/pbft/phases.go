package pbft

import (
	"time"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/protocol"
)

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
func (c *phaseClock) observe(rd *protocol.Ready, m *node.OpsMetrics, now time.Time) {
	for _, e := range rd.Persist {
		if e.Kind == protocol.KindPrePrepare {
			if _, ok := c.started[e.Sequence]; !ok {
				c.started[e.Sequence] = now
			}
		}
		if e.Kind == protocol.KindCommit {
			if t, ok := c.started[e.Sequence]; ok && !c.prepared[e.Sequence] {
				c.prepared[e.Sequence] = true
				m.Phase.WithLabelValues("prepared").Observe(now.Sub(t).Seconds())
			}
		}
	}
	for _, b := range rd.Committed {
		if t, ok := c.started[b.Sequence]; ok {
			m.Phase.WithLabelValues("committed").Observe(now.Sub(t).Seconds())
		}
	}
}

// executed records the executed phase of seq and forgets it.
func (c *phaseClock) executed(seq uint64, m *node.OpsMetrics, now time.Time) {
	if t, ok := c.started[seq]; ok {
		m.Phase.WithLabelValues("executed").Observe(now.Sub(t).Seconds())
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
