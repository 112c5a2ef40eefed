package raftmode_test

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// watchedLog calls onSave before each Save that writes entries, with the
// replica's index and the entries, and onSnapshot (when set) before each
// CreateSnapshot.
type watchedLog struct {
	*raftlog.Log
	i          int
	onSave     func(i int, entries []*raftpb.Entry)
	onSnapshot func(i int, index uint64)
}

func (l watchedLog) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error) {
	if l.onSnapshot != nil {
		l.onSnapshot(l.i, index)
	}
	return l.Log.CreateSnapshot(index, cs, data)
}

func (l watchedLog) Save(hs *raftpb.HardState, entries []*raftpb.Entry, snap *raftpb.Snapshot) error {
	if len(entries) > 0 {
		l.onSave(l.i, entries)
	}
	return l.Log.Save(hs, entries, snap)
}

// newWatchedCluster is newCluster with every replica's Save watched.
func newWatchedCluster(t *testing.T, n int, onSave func(i int, entries []*raftpb.Entry)) *cluster {
	return newWatchedClusterSnapshotting(t, n, 1000, onSave, nil)
}

// newWatchedClusterSnapshotting is newWatchedCluster with a snapshot
// interval and every replica's CreateSnapshot watched too.
func newWatchedClusterSnapshotting(t *testing.T, n int, interval uint64, onSave func(i int, entries []*raftpb.Entry), onSnapshot func(i int, index uint64)) *cluster {
	c := &cluster{t: t, down: map[int]bool{}, cut: map[int]bool{}, replies: map[string][]byte{}, reads: map[string]*wire.Reply{}, interval: interval, n: n}
	c.wrapLog = func(i int, l *raftlog.Log) raftmode.LogStorage {
		return watchedLog{Log: l, i: i, onSave: onSave, onSnapshot: onSnapshot}
	}
	for i := range n {
		c.add(i)
	}
	return c
}

// sentBy returns the messages replica i has sent that are still in
// flight (sent in the current round).
func (c *cluster) sentBy(i int) []*raftpb.Message {
	var out []*raftpb.Message
	for _, d := range c.inflight {
		if d.from == i && d.msg != nil {
			out = append(out, d.msg)
		}
	}
	return out
}

// A leader sends its appends while it persists the same entries (Raft
// thesis §10.2.1): when its Save of a batch of requests begins, the
// MsgApp carrying them has already gone to every follower.
func TestLeaderSendsAppendsBeforePersisting(t *testing.T) {
	var c *cluster
	early, saves := 0, 0
	// watching: the first request was replied, so raft replicates to
	// both followers (after an election it probes them, one append at a
	// time, until they answer).
	watching := false
	c = newWatchedCluster(t, 3, func(i int, entries []*raftpb.Entry) {
		if !watching || !c.cores[i].Status().IsLeader {
			return
		}
		saves++
		first := entries[0].GetIndex()
		to := map[uint64]bool{}
		for _, m := range c.sentBy(i) {
			if m.GetType() == raftpb.MessageType_MsgApp && len(m.GetEntries()) > 0 && m.GetEntries()[0].GetIndex() <= first {
				to[m.GetTo()] = true
			}
		}
		if len(to) == 2 {
			early++
		}
	})
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	for n := uint64(1); n <= 10; n++ {
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
		c.runUntil(50, func() bool { return c.replied(n) && c.converged() })
		watching = true
	}
	if saves == 0 || early != saves {
		t.Fatalf("the leader's appends left before %d of its %d saves of entries, want all", early, saves)
	}
}

// A follower acknowledges entries only once they are persisted, and
// applies committed entries only after its write: when its Save of
// entries begins, it has sent no MsgAppResp for them (nor for anything
// beyond its log) and executed nothing past its stored commit index, and
// every message that leaves any replica
// keeps the persist-before-send rules (checkPersisted, in SendRaft).
func TestFollowerAcknowledgesOnlyPersistedEntries(t *testing.T) {
	var c *cluster
	followerSaves := 0
	c = newWatchedCluster(t, 3, func(i int, entries []*raftpb.Entry) {
		if c == nil || c.cores[i].Status().IsLeader {
			return
		}
		followerSaves++
		// A follower applies after its write (its acknowledgement waits
		// for the write): nothing beyond the commit index it stored.
		hs, _, _ := c.logs[i].InitialState()
		if executed := c.cores[i].Executor().LastExecuted(); executed > hs.GetCommit() {
			t.Fatalf("follower %d executed %d before saving (stored commit %d)", i, executed, hs.GetCommit())
		}
		first := entries[0].GetIndex()
		for _, m := range c.sentBy(i) {
			if m.GetType() == raftpb.MessageType_MsgAppResp && !m.GetReject() && m.GetIndex() >= first {
				t.Fatalf("replica %d acknowledged index %d before persisting entries from %d", i, m.GetIndex(), first)
			}
		}
	})
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	for n := uint64(1); n <= 10; n++ {
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
	}
	c.runUntil(200, func() bool { return c.replied(10) && c.converged() })
	// A crashed and restarted leader: a new term, whose messages wait for
	// the term to be persisted.
	c.down[l] = true
	c.runUntil(500, func() bool { return c.leader() >= 0 && c.leader() != l })
	c.start(l)
	c.submit(c.leader(), 11, execution.EncodePut([]byte("k"), []byte("v11")))
	c.runUntil(300, func() bool { return c.replied(11) && c.converged() })
	if followerSaves == 0 {
		t.Fatal("no follower saved entries")
	}
}

// A leader answers the requests of committed entries before it persists
// the entries proposed since: when a Ready carries both new entries and
// committed ones an earlier Ready persisted, the committed requests'
// replies are out when the Ready's Save begins.
func TestRepliesOfCommittedEntriesDoNotWaitForTheNextSave(t *testing.T) {
	var c *cluster
	watching := false
	checked := 0
	var expect uint64 // the committed request the leader's next Save must find replied
	c = newWatchedCluster(t, 3, func(i int, entries []*raftpb.Entry) {
		if !watching || !c.cores[i].Status().IsLeader || expect == 0 {
			return
		}
		if !c.replied(expect) {
			t.Fatalf("the leader saves entries from %d before it replied to request %d, committed earlier", entries[0].GetIndex(), expect)
		}
		checked++
	})
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.runUntil(50, func() bool { return c.replied(1) && c.converged() })
	watching = true
	for n := uint64(2); n <= 6; n++ {
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
		c.round() // the leader proposes n and sends its appends
		c.round() // the followers persist n and acknowledge it
		// The acknowledgements commit n in the leader's next Process,
		// which also proposes n+1.
		expect = n
		c.submit(l, n+10, execution.EncodePut([]byte("j"), fmt.Appendf(nil, "w%d", n)))
		c.round()
		expect = 0
		c.runUntil(50, func() bool { return c.replied(n) && c.replied(n+10) && c.converged() })
	}
	if checked == 0 {
		t.Fatal("no Ready of the leader carried both committed and new entries")
	}
}

// Applying before persisting is limited to entries the log holds already
// and to no snapshot index: no replica applies an entry before its log
// holds it (a follower learns of an entry and of its commit in one
// Ready), and a snapshot is recorded only once the commit index that
// covers it is stored (raft refuses to start from a stored commit index
// below the snapshot's).
func TestNothingIsAppliedOrSnapshottedAheadOfTheLog(t *testing.T) {
	var c *cluster
	snapshots := 0
	c = newWatchedClusterSnapshotting(t, 3, 4, func(i int, entries []*raftpb.Entry) {
		if c == nil {
			return
		}
		if executed := c.cores[i].Executor().LastExecuted(); executed >= entries[0].GetIndex() {
			t.Fatalf("replica %d executed %d before its log held it (saving entries from %d)", i, executed, entries[0].GetIndex())
		}
	}, func(i int, index uint64) {
		hs, _, _ := c.logs[i].InitialState()
		if hs.GetCommit() < index {
			t.Fatalf("replica %d records a snapshot at %d with its stored commit index at %d", i, index, hs.GetCommit())
		}
		snapshots++
	})
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	lagging := (c.leader() + 1) % 3
	for n := uint64(1); n <= 30; n++ {
		// A follower cut off for a while catches up from appends that
		// carry entries together with a commit index covering them.
		c.cut[lagging] = n > 10 && n <= 20
		l := c.leader()
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
		if n%3 == 0 {
			c.runUntil(100, func() bool { return c.replied(n) })
		} else {
			c.round()
		}
	}
	c.runUntil(300, func() bool { return c.replied(30) && c.converged() })
	// A leader cut off with entries it could not commit: the others elect
	// a leader and commit over them; back, it gets appends that replace
	// its entries together with a commit index covering them.
	old := c.leader()
	for id := range c.n {
		c.cut[id] = id == old
	}
	for n := uint64(31); n <= 33; n++ {
		if err := c.drivers[old].Submit(&wire.Request{ClientId: client, RequestNumber: n, Operation: execution.EncodePut([]byte("x"), []byte("lost"))}); err != nil {
			t.Fatal(err)
		}
		c.round()
	}
	newLeader := func() int {
		for i, core := range c.cores {
			if i != old && core.Status().IsLeader && core.Status().Term > c.cores[old].Status().Term {
				return i
			}
		}
		return -1
	}
	c.runUntil(500, func() bool { return newLeader() >= 0 })
	for n := uint64(34); n <= 40; n++ {
		c.submit(newLeader(), n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
	}
	c.runUntil(300, func() bool { return c.replied(40) })
	clear(c.cut)
	c.runUntil(500, func() bool { return c.converged() })
	if snapshots == 0 {
		t.Fatal("no snapshot was taken")
	}
}

// A follower acknowledges appended entries as soon as they are written,
// before it applies the entries the same Ready commits: under load one
// append carries new entries and the commit of earlier ones, and the
// acknowledgement would otherwise wait for executing them.
func TestFollowerAcknowledgesBeforeApplying(t *testing.T) {
	c := newCluster(t, 3, 1000)
	before := 0
	c.onSend = func(i int, m *raftpb.Message) {
		if m.GetType() != raftpb.MessageType_MsgAppResp || m.GetReject() || c.cores[i].Status().IsLeader {
			return
		}
		hs, _, _ := c.logs[i].InitialState()
		if c.cores[i].Executor().LastExecuted() < hs.GetCommit() {
			before++
		}
	}
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.runUntil(50, func() bool { return c.replied(1) && c.converged() })
	for n := uint64(2); n <= 6; n++ {
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
		c.round() // the leader proposes n
		c.round() // the followers acknowledge n
		// The leader commits n and proposes n+10 in one Process: its
		// append carries both.
		c.submit(l, n+10, execution.EncodePut([]byte("j"), fmt.Appendf(nil, "w%d", n)))
		c.runUntil(50, func() bool { return c.replied(n) && c.replied(n+10) && c.converged() })
	}
	if before == 0 {
		t.Fatal("no follower acknowledged an append before applying the entries it committed")
	}
}

// A follower answers a heartbeat before it persists the entries that came
// with it: when the leader proposes a write and starts a ReadIndex round
// at once, a follower's Save of the write's entries begins with its
// heartbeat answer already sent (and no acknowledgement of the entries),
// so the read waits for a heartbeat round trip, not for the follower's
// fsync.
func TestFollowerAnswersHeartbeatBeforePersisting(t *testing.T) {
	var c *cluster
	watching := false
	saves, answered := 0, 0
	c = newWatchedCluster(t, 3, func(i int, entries []*raftpb.Entry) {
		if !watching || c.cores[i].Status().IsLeader {
			return
		}
		saves++
		for _, m := range c.sentBy(i) {
			if m.GetType() == raftpb.MessageType_MsgHeartbeatResp && len(m.GetContext()) > 0 {
				answered++
				return
			}
		}
	})
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.runUntil(50, func() bool { return c.replied(1) && c.converged() })
	watching = true
	for n := uint64(2); n <= 6; n += 2 {
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
		c.read(l, n+1, execution.EncodeGet([]byte("k")))
		c.runUntil(50, func() bool { return c.replied(n) && c.readAnswer(n+1) != nil && c.converged() })
	}
	if saves == 0 || answered == 0 {
		t.Fatalf("followers' heartbeat answers left before %d of their %d saves of entries, want some", answered, saves)
	}
}

// While a leader's append round is out, the requests arriving meanwhile
// wait and then share one entry: a request submitted while the previous
// entry is uncommitted is not proposed at the next Process, and the two
// submitted during the round go in one entry once it commits. A request
// with nothing out is proposed at once.
func TestLeaderHoldsProposalsWhileAnAppendIsOut(t *testing.T) {
	c := newCluster(t, 3, 1000)
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.runUntil(50, func() bool { return c.replied(1) && c.converged() })
	start := c.cores[l].Status().LastIndex
	c.submit(l, 2, execution.EncodePut([]byte("k"), []byte("v2")))
	if err := c.drivers[l].Process(); err != nil {
		t.Fatal(err)
	}
	if got := c.cores[l].Status().LastIndex; got != start+1 {
		t.Fatalf("with nothing out, the leader's log grew from %d to %d, want one entry", start, got)
	}
	for n := uint64(3); n <= 4; n++ {
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
		if err := c.drivers[l].Process(); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.cores[l].Status().LastIndex; got != start+1 {
		t.Fatalf("while entry %d was out, the leader's log grew to %d", start+1, got)
	}
	c.runUntil(50, func() bool { return c.replied(4) && c.converged() })
	if got := c.cores[l].Status().LastIndex; got != start+2 {
		t.Fatalf("requests 3 and 4 took entries up to %d, want one entry (%d)", got, start+2)
	}
}

// A leader answers the reads a Ready confirms before it persists the
// Ready's new entries: under a load of writes and reads, some of the
// leader's Saves of entries begin with read answers of the same Process
// already sent, so a read does not wait for the fsync of writes proposed
// after it.
func TestLeaderAnswersConfirmedReadsBeforePersisting(t *testing.T) {
	var c *cluster
	watching := false
	saves, early := 0, 0
	c = newWatchedCluster(t, 3, func(i int, entries []*raftpb.Entry) {
		if !watching || !c.cores[i].Status().IsLeader {
			return
		}
		saves++
		if c.processing == i && c.answeredInProcess > 0 {
			early++
		}
	})
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	c.submit(l, 1, execution.EncodePut([]byte("k"), []byte("v1")))
	c.runUntil(50, func() bool { return c.replied(1) && c.converged() })
	watching = true
	for n := uint64(2); n < 40; n += 2 {
		c.submit(l, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
		c.read(l, n+1, execution.EncodeGet([]byte("k")))
		c.round()
	}
	c.runUntil(100, func() bool { return c.replied(38) && c.readAnswer(39) != nil && c.converged() })
	if saves == 0 || early == 0 {
		t.Fatalf("read answers left before %d of the leader's %d saves of entries, want some", early, saves)
	}
}
