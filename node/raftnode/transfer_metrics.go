package raftnode

import (
	"time"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/statetransfer"
)

// transferMetrics feeds a statetransfer.Fetcher's events to the replica's
// metrics; it runs on the goroutine that owns the Fetcher and times a
// transfer from its (latest) Started to Installed.
type transferMetrics struct {
	m *node.Metrics
	// unexpected counts a chunk the Fetcher ignored; nil: not counted.
	unexpected func()
	started    time.Time
}

var _ statetransfer.Observer = (*transferMetrics)(nil)

func (o *transferMetrics) Started(statetransfer.Target) {
	o.m.StateTransfers.Inc()
	o.started = time.Now()
}

func (o *transferMetrics) Rejected(reason string) {
	if reason != "unexpected" {
		o.m.StateTransferRejected.WithLabelValues(reason).Inc()
	} else if o.unexpected != nil {
		o.unexpected()
	}
}

func (o *transferMetrics) Received(entries, _ int) {
	o.m.StateReceivedEntries.Add(float64(entries))
}

func (o *transferMetrics) Installed(uint64, int) {
	o.m.StateTransferSeconds.Observe(time.Since(o.started).Seconds())
}
