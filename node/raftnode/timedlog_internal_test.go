package raftnode

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/raftmode"
)

// saveOnly is a LogStorage whose Save succeeds and records nothing.
type saveOnly struct{ raftmode.LogStorage }

func (saveOnly) Save(*raftpb.HardState, []*raftpb.Entry, *raftpb.Snapshot) error { return nil }

// timedLog times the Saves that write entries or a snapshot, and not one
// that only moves the commit index.
func TestTimedLogTimesSyncedSaves(t *testing.T) {
	observed := 0
	l := timedLog{LogStorage: saveOnly{}, seconds: prometheus.ObserverFunc(func(float64) { observed++ })}
	commit := uint64(3)
	if err := l.Save(&raftpb.HardState{Commit: &commit}, nil, &raftpb.Snapshot{}); err != nil {
		t.Fatal(err)
	}
	if observed != 0 {
		t.Fatalf("a commit-only save was timed (%d observations)", observed)
	}
	index, term := uint64(4), uint64(1)
	if err := l.Save(&raftpb.HardState{}, []*raftpb.Entry{{Index: &index, Term: &term}}, &raftpb.Snapshot{}); err != nil {
		t.Fatal(err)
	}
	if observed != 1 {
		t.Fatalf("a save of entries gave %d observations, want 1", observed)
	}
}
