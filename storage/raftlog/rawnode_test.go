package raftlog

import (
	"fmt"
	"io"
	"log"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/storage"
)

// raftTestNode is one replica of the in-memory RawNode cluster.
type raftTestNode struct {
	id      uint64
	dir     string
	db      *storage.DB
	log     *Log
	rn      *raft.RawNode
	applied uint64
	state   []string // applied proposals, in order (the "application")
	down    bool
}

type raftTestCluster struct {
	t     *testing.T
	nodes map[uint64]*raftTestNode
	msgs  []*raftpb.Message
}

var raftTestLogger = &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}

func (c *raftTestCluster) start(n *raftTestNode) {
	c.t.Helper()
	db, err := storage.Open(n.dir, storage.Options{Sync: false})
	if err != nil {
		c.t.Fatalf("node %d: Open: %v", n.id, err)
	}
	l, err := Open(db)
	if err != nil {
		c.t.Fatalf("node %d: Open: %v", n.id, err)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              n.id,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         l,
		Applied:         n.applied,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		Logger:          raftTestLogger,
	})
	if err != nil {
		c.t.Fatalf("node %d: NewRawNode: %v", n.id, err)
	}
	n.db, n.log, n.rn, n.down = db, l, rn, false
}

func (c *raftTestCluster) stop(n *raftTestNode) {
	c.t.Helper()
	n.down = true
	n.rn, n.log = nil, nil
	if err := n.db.Close(); err != nil {
		c.t.Fatalf("node %d: Close: %v", n.id, err)
	}
}

// stabilize runs every live node's Ready loop and delivers messages until
// nothing is left to do.
func (c *raftTestCluster) stabilize() {
	c.t.Helper()
	for round := 0; round < 1000; round++ {
		busy := false
		for id := uint64(1); id <= 3; id++ {
			n := c.nodes[id]
			for !n.down && n.rn.HasReady() {
				busy = true
				rd := n.rn.Ready()
				if err := n.log.Save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
					c.t.Fatalf("node %d: Save: %v", id, err)
				}
				if !raft.IsEmptySnap(rd.Snapshot) {
					n.state = nil
					if d := string(rd.Snapshot.GetData()); d != "" {
						n.state = strings.Split(d, ",")
					}
					n.applied = rd.Snapshot.GetMetadata().GetIndex()
				}
				for _, e := range rd.CommittedEntries {
					if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
						n.state = append(n.state, string(e.GetData()))
					}
					n.applied = e.GetIndex()
				}
				c.msgs = append(c.msgs, rd.Messages...)
				n.rn.Advance(rd)
			}
		}
		msgs := c.msgs
		c.msgs = nil
		for _, m := range msgs {
			busy = true
			to, from := c.nodes[m.GetTo()], c.nodes[m.GetFrom()]
			if to.down || from.down {
				continue
			}
			_ = to.rn.Step(m)
			if m.GetType() == raftpb.MsgSnap {
				from.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
			}
		}
		if !busy {
			return
		}
	}
	c.t.Fatal("the cluster did not stabilize in 1000 rounds")
}

// catchUp ticks the leader until node n has applied what the leader has.
func (c *raftTestCluster) catchUp(leader, n *raftTestNode) {
	c.t.Helper()
	for tick := 0; tick < 50; tick++ {
		if slices.Equal(n.state, leader.state) && n.applied == leader.applied {
			return
		}
		leader.rn.Tick()
		c.stabilize()
	}
	c.t.Fatalf("node %d did not catch up: state %v applied %d, leader %v applied %d", n.id, n.state, n.applied, leader.state, leader.applied)
}

func (c *raftTestCluster) propose(leader *raftTestNode, values ...string) {
	c.t.Helper()
	for _, v := range values {
		if err := leader.rn.Propose([]byte(v)); err != nil {
			c.t.Fatalf("Propose(%s): %v", v, err)
		}
	}
	c.stabilize()
}

func (c *raftTestCluster) checkStates(want []string) {
	c.t.Helper()
	for id := uint64(1); id <= 3; id++ {
		if n := c.nodes[id]; !n.down && !slices.Equal(n.state, want) {
			c.t.Fatalf("node %d state = %v, want %v", id, n.state, want)
		}
	}
}

// TestRaftLogRawNodeCluster runs three raft.RawNodes on RaftLogs, elects a
// leader, commits proposals, restarts a follower from its reopened
// database twice (catching up by log entries, then by snapshot) and checks
// it rejoins.
func TestRaftLogRawNodeCluster(t *testing.T) {
	c := &raftTestCluster{t: t, nodes: map[uint64]*raftTestNode{}}
	voters := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	for id := uint64(1); id <= 3; id++ {
		n := &raftTestNode{id: id, dir: t.TempDir()}
		c.nodes[id] = n
		// Bootstrap as raft recommends: a log starting after a snapshot
		// at index 1 holding the membership.
		db, err := storage.Open(n.dir, storage.Options{Sync: false})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		l, err := Open(db)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		boot := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(1)), ConfState: voters}}
		if err := l.Save(nil, nil, boot); err != nil {
			t.Fatalf("Save(bootstrap snapshot): %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		n.applied = 1
		c.start(n)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if !n.down {
				n.db.Close()
			}
		}
	})
	leader, follower := c.nodes[1], c.nodes[3]

	if err := leader.rn.Campaign(); err != nil {
		t.Fatalf("Campaign: %v", err)
	}
	c.stabilize()
	for id := uint64(1); id <= 3; id++ {
		if lead := c.nodes[id].rn.BasicStatus().Lead; lead != 1 {
			t.Fatalf("node %d sees leader %d, want 1", id, lead)
		}
	}
	var want []string
	for i := 1; i <= 5; i++ {
		want = append(want, fmt.Sprintf("v%d", i))
	}
	c.propose(leader, want...)
	c.checkStates(want)

	// Restart the follower; it catches up from the leader's log.
	c.stop(follower)
	c.propose(leader, "v6", "v7")
	want = append(want, "v6", "v7")
	c.checkStates(want)
	c.start(follower)
	if last, _ := follower.log.LastIndex(); last < follower.applied {
		t.Fatalf("restarted follower: LastIndex %d below its applied index %d", last, follower.applied)
	}
	c.catchUp(leader, follower)
	c.checkStates(want)
	if snap, _ := follower.log.Snapshot(); snap.GetMetadata().GetIndex() != 1 {
		t.Fatalf("follower snapshot index %d, want 1 (it should have caught up by log entries)", snap.GetMetadata().GetIndex())
	}

	// Restart it again after the others compacted their logs past it; it
	// catches up from a snapshot.
	c.stop(follower)
	c.propose(leader, "v8", "v9", "v10")
	want = append(want, "v8", "v9", "v10")
	c.checkStates(want)
	for _, id := range []uint64{1, 2} {
		n := c.nodes[id]
		if _, err := n.log.CreateSnapshot(n.applied, voters, []byte(strings.Join(n.state, ","))); err != nil {
			t.Fatalf("node %d: CreateSnapshot(%d): %v", id, n.applied, err)
		}
		if err := n.log.Compact(n.applied); err != nil {
			t.Fatalf("node %d: Compact(%d): %v", id, n.applied, err)
		}
	}
	c.start(follower)
	c.catchUp(leader, follower)
	c.checkStates(want)
	snap, _ := follower.log.Snapshot()
	if leaderSnap, _ := leader.log.Snapshot(); snap.GetMetadata().GetIndex() != leaderSnap.GetMetadata().GetIndex() {
		t.Fatalf("follower snapshot index %d, want the leader's %d (it should have caught up by snapshot)", snap.GetMetadata().GetIndex(), leaderSnap.GetMetadata().GetIndex())
	}

	// The cluster keeps working, and the follower's log reads back after a
	// restart.
	c.propose(leader, "v11")
	want = append(want, "v11")
	c.checkStates(want)
	before := readRaftLogState(t, follower.log)
	c.stop(follower)
	c.start(follower)
	if diff := diffRaftLogState(before, readRaftLogState(t, follower.log)); diff != "" {
		t.Fatalf("follower log differs after restart: %s", diff)
	}
	c.catchUp(leader, follower)
	c.checkStates(want)
}
