package raftnode

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/raftmode"
)

// timedLog is the core's raft log with each Save that writes entries or a
// snapshot (the synced writes; one that only moves the commit index is not
// synced) timed into seconds, pbftnode_persist_seconds: the time the event
// loop waits for the disk, as the PBFT runtime times its log appends.
type timedLog struct {
	raftmode.LogStorage
	seconds prometheus.Observer
}

// Save is LogStorage.Save, timed.
func (l timedLog) Save(hs *raftpb.HardState, entries []*raftpb.Entry, snap *raftpb.Snapshot) error {
	start := time.Now()
	err := l.LogStorage.Save(hs, entries, snap)
	if len(entries) > 0 || !raft.IsEmptySnap(snap) {
		l.seconds.Observe(time.Since(start).Seconds())
	}
	return err
}
