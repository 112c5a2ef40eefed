package raftmode

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// cluster is an in-memory Raft-mode cluster driven step by step: each
// round ticks every replica, delivers the messages of the previous round
// (except to or from a cut-off replica) and processes.
type cluster struct {
	t        *testing.T
	n        int
	dbs      []*storage.DB
	cores    []*Core
	down     map[int]bool // crashed: neither ticks nor receives
	cut      map[int]bool // partitioned away
	inflight []*raftpb.Message
	replies  map[string][]byte
	snaps    []*execution.StateSnapshot // latest snapshot per replica
	interval uint64
}

func newCluster(t *testing.T, n int, interval uint64) *cluster {
	c := &cluster{t: t, down: map[int]bool{}, cut: map[int]bool{}, replies: map[string][]byte{}, interval: interval, n: n}
	for i := range n {
		db, err := storage.OpenMem(storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c.dbs = append(c.dbs, db)
		c.cores = append(c.cores, nil)
		c.snaps = append(c.snaps, nil)
		c.start(i)
	}
	return c
}

// start (re)builds replica i's core from what its database holds.
func (c *cluster) start(i int) {
	c.t.Helper()
	db := c.dbs[i]
	kv, err := execution.NewKV(db.LevelDB())
	if err != nil {
		c.t.Fatal(err)
	}
	exec, err := execution.NewExecutor(db, kv, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	log, err := raftlog.Open(db)
	if err != nil {
		c.t.Fatal(err)
	}
	core, err := New(Config{
		Index: uint32(i), N: c.n, Log: log, Executor: exec,
		Rand: rand.New(rand.NewPCG(uint64(i), 7)), ElectionTicks: 10, HeartbeatTicks: 2,
		SnapshotInterval: c.interval, MaxBatchSize: 4,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.cores[i] = core
	delete(c.down, i)
}

func (c *cluster) round() {
	c.t.Helper()
	msgs := c.inflight
	c.inflight = nil
	for _, m := range msgs {
		from, to := int(m.GetFrom()-1), int(m.GetTo()-1)
		if c.down[to] || c.cut[to] || c.cut[from] {
			continue
		}
		_ = c.cores[to].Step(uint32(from), m)
	}
	for i, core := range c.cores {
		if c.down[i] {
			continue
		}
		core.Tick()
		out, err := core.Process()
		if err != nil {
			c.t.Fatalf("replica %d: %v", i, err)
		}
		c.inflight = append(c.inflight, out.Messages...)
		for _, m := range out.Messages {
			if m.GetType() == raftpb.MessageType_MsgSnap {
				core.ReportSnapshot(uint32(m.GetTo()-1), true)
			}
		}
		for _, r := range out.Replies {
			c.replies[fmt.Sprintf("%x/%d", r.ClientID, r.RequestNumber)] = r.Result
		}
		if out.Snapshot != nil {
			if c.snaps[i] != nil {
				c.snaps[i].Release()
			}
			c.snaps[i] = out.Snapshot
		}
		if need := out.NeedState; need != nil {
			c.transfer(i, need)
		}
	}
}

// transfer installs the newest snapshot any other replica holds, as the
// runtime's state transfer does.
func (c *cluster) transfer(i int, need *StateNeed) {
	c.t.Helper()
	var src *execution.StateSnapshot
	for j, s := range c.snaps {
		if j != i && s != nil && s.Sequence() >= need.Index && (src == nil || s.Sequence() > src.Sequence()) {
			src = s
		}
	}
	if src == nil {
		c.t.Fatalf("replica %d needs state at %d; no peer has a snapshot", i, need.Index)
	}
	exec := c.cores[i].Executor()
	if err := exec.RestoreBegin(); err != nil {
		c.t.Fatal(err)
	}
	var key []byte
	for {
		entries, next, err := src.Chunk(key, 256)
		if err != nil {
			c.t.Fatal(err)
		}
		if err := exec.RestoreChunk(entries); err != nil {
			c.t.Fatal(err)
		}
		if len(next) == 0 {
			break
		}
		key = next
	}
	if _, err := exec.RestoreFinish(); err != nil {
		c.t.Fatal(err)
	}
	if err := c.cores[i].StateInstalled(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) runUntil(limit int, cond func() bool) {
	c.t.Helper()
	for range limit {
		if cond() {
			return
		}
		c.round()
	}
	c.t.Fatalf("condition not reached in %d rounds", limit)
}

func (c *cluster) leader() int {
	for i, core := range c.cores {
		if !c.down[i] && core.Status().IsLeader {
			return i
		}
	}
	return -1
}

var client = []byte("client-0123456789abcdef0123456789")

func (c *cluster) submit(to int, number uint64, op []byte) {
	c.t.Helper()
	if _, err := c.cores[to].Submit(&wire.Request{ClientId: client, RequestNumber: number, Operation: op}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) replied(number uint64) bool {
	_, ok := c.replies[fmt.Sprintf("%x/%d", client, number)]
	return ok
}

// converged: every running replica applied the same index and holds the
// same state digest.
func (c *cluster) converged() bool {
	var first *Core
	for i, core := range c.cores {
		if c.down[i] {
			continue
		}
		if first == nil {
			first = core
			continue
		}
		if core.Status().Applied != first.Status().Applied || core.Executor().StateDigest() != first.Executor().StateDigest() {
			return false
		}
	}
	return true
}

func TestElectsLeaderAppliesInOrderAndConverges(t *testing.T) {
	c := newCluster(t, 3, 1000)
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	follower := (l + 1) % 3
	for n := uint64(1); n <= 20; n++ {
		to := l
		if n%2 == 0 {
			to = follower // forwarded to the leader by raft
		}
		c.submit(to, n, execution.EncodePut([]byte("k"), fmt.Appendf(nil, "v%d", n)))
	}
	c.runUntil(200, func() bool { return c.replied(20) && c.converged() })
	for n := uint64(1); n <= 20; n++ {
		if !c.replied(n) {
			t.Fatalf("request %d not replied", n)
		}
	}
	// A retransmitted request gets its cached reply, not a second execution.
	applied := c.cores[l].Status().Applied
	reply, err := c.cores[l].Submit(&wire.Request{ClientId: client, RequestNumber: 5, Operation: execution.EncodePut([]byte("k"), []byte("again"))})
	if err != nil || reply == nil {
		t.Fatalf("retransmission: reply %v, err %v; want the cached reply", reply, err)
	}
	c.runUntil(50, func() bool { return true })
	if got := c.cores[l].Status().Applied; got != applied {
		t.Fatalf("retransmission was re-proposed: applied %d -> %d", applied, got)
	}
}

func TestCrashedLeaderIsReplacedAndRestartRecovers(t *testing.T) {
	c := newCluster(t, 3, 1000)
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	old := c.leader()
	c.submit(old, 1, execution.EncodePut([]byte("a"), []byte("1")))
	c.runUntil(100, func() bool { return c.replied(1) })
	c.down[old] = true
	c.runUntil(300, func() bool { return c.leader() >= 0 && c.leader() != old })
	c.submit(c.leader(), 2, execution.EncodePut([]byte("b"), []byte("2")))
	c.runUntil(100, func() bool { return c.replied(2) })
	c.start(old) // from what its database holds
	c.runUntil(300, func() bool { return c.converged() })
	if got := c.cores[old].Status().Applied; got < 3 {
		t.Fatalf("restarted replica applied up to %d", got)
	}
}

func TestLaggingFollowerCatchesUpFromSnapshot(t *testing.T) {
	c := newCluster(t, 3, 8)
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	lagging := (l + 1) % 3
	c.cut[lagging] = true
	for n := uint64(1); n <= 120; n++ {
		c.submit(l, n, execution.EncodePut(fmt.Appendf(nil, "k%d", n%10), fmt.Appendf(nil, "v%d", n)))
		c.round()
	}
	c.runUntil(300, func() bool { return c.replied(120) })
	if first, _ := c.cores[l].cfg.Log.FirstIndex(); first <= 2 {
		t.Fatalf("leader's log was not compacted (first index %d)", first)
	}
	c.cut = map[int]bool{}
	c.runUntil(500, func() bool { return c.converged() })
	st := c.cores[lagging].Status()
	if st.SnapshotIndex < 8 {
		t.Fatalf("lagging replica caught up without a snapshot (snapshot index %d)", st.SnapshotIndex)
	}
	// It keeps up afterwards.
	c.submit(c.leader(), 121, execution.EncodePut([]byte("z"), []byte("z")))
	c.runUntil(200, func() bool { return c.replied(121) && c.converged() })
}

func TestStepRejectsSpoofedAndForeignMessages(t *testing.T) {
	c := newCluster(t, 3, 1000)
	core := c.cores[0]
	cases := []struct {
		from uint32
		msg  *raftpb.Message
	}{
		{1, &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(3), To: proto.Uint64(1)}},
		{1, &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(3)}},
		{1, &raftpb.Message{Type: raftpb.MessageType_MsgHup.Enum(), From: proto.Uint64(2), To: proto.Uint64(1)}},
	}
	for i, tc := range cases {
		if err := core.Step(tc.from, tc.msg); err == nil {
			t.Errorf("case %d: accepted", i)
		}
	}
}

func TestOversizedRequestIsRefusedAndEntriesStayBounded(t *testing.T) {
	c := newCluster(t, 3, 1000)
	core := c.cores[0]
	big := make([]byte, DefaultMaxEntryBytes)
	if _, err := core.Submit(&wire.Request{ClientId: client, RequestNumber: 1, Operation: big}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized request: err %v, want ErrTooLarge", err)
	}
	// Requests that each fit but together do not are split over entries.
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	for n := uint64(2); n < 6; n++ {
		c.submit(l, n, execution.EncodePut([]byte("k"), make([]byte, DefaultMaxEntryBytes/3)))
	}
	before := c.cores[l].Status().LastIndex
	c.runUntil(200, func() bool { return c.replied(5) })
	if entries := c.cores[l].Status().LastIndex - before; entries < 2 {
		t.Fatalf("4 requests of a third of an entry each went into %d entry", entries)
	}
}

// wipe replaces replica i's database with an empty one, as a disk
// replacement would, and restarts it.
func (c *cluster) wipe(i int) {
	c.t.Helper()
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close() })
	c.dbs[i] = db
	if c.snaps[i] != nil {
		c.snaps[i].Release()
		c.snaps[i] = nil
	}
	c.start(i)
}

// A follower that lost its data while the leader stays up must not wedge
// (etcd raft alone panics on the leader's heartbeat): the leader hands
// leadership over and the new leader sends the follower a snapshot.
func TestWipedFollowerRejoinsWhileTheLeaderStaysUp(t *testing.T) {
	c := newCluster(t, 3, 8)
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	wiped := (l + 1) % 3
	for n := uint64(1); n <= 60; n++ {
		c.submit(l, n, execution.EncodePut(fmt.Appendf(nil, "k%d", n%7), fmt.Appendf(nil, "v%d", n)))
		c.round()
	}
	c.runUntil(300, func() bool { return c.replied(60) && c.converged() })
	c.down[wiped] = true
	c.round()
	c.wipe(wiped)
	c.submit(c.leader(), 61, execution.EncodePut([]byte("after"), []byte("wipe")))
	c.runUntil(1000, func() bool { return c.replied(61) && c.converged() })
	c.submit(c.leader(), 62, execution.EncodePut([]byte("and"), []byte("more")))
	c.runUntil(300, func() bool { return c.replied(62) && c.converged() })
	if st := c.cores[wiped].Status(); st.SnapshotIndex < 8 || st.Applied < 60 {
		t.Fatalf("wiped replica: %+v; want it restored from a snapshot", st)
	}
}
