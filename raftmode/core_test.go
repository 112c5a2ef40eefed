package raftmode_test

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/raftreplica"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// cluster is an in-memory Raft-mode cluster driven step by step through
// the runtime's driver (raftreplica.Driver): each round delivers what the
// previous round sent (except to or from a cut-off replica), then ticks
// and processes every running replica.
type cluster struct {
	t        *testing.T
	n        int
	dbs      []*storage.DB
	logs     []*raftlog.Log
	cores    []*raftmode.Core
	drivers  []*raftreplica.Driver
	down     map[int]bool // crashed: neither ticks nor receives
	cut      map[int]bool // partitioned away
	inflight []delivery
	replies  map[string][]byte
	snaps    [][]*execution.StateSnapshot // the two latest per replica
	interval uint64
	// stateRequests counts the state requests sent to live peers.
	stateRequests int
	// catchUp is Config.SnapshotCatchUpEntries: 0 means interval (the
	// log from the previous snapshot on), as the tests of snapshots need.
	catchUp uint64
	// reads are the read-only answers, by client/number; readTimeout and
	// maxReads configure the cores' read path (0: defaults).
	reads                 map[string]*wire.Reply
	readTimeout, maxReads int
	// rules, when set, run the executors WithMembership; spare marks the
	// replicas started outside the configuration (addSpare).
	rules *execution.MembershipRules
	spare map[int]bool
	// drop, when set, loses the raft messages it returns true for.
	drop func(m *raftpb.Message) bool
	// wrapLog, when set, wraps replica i's raft log storage.
	wrapLog func(i int, l *raftlog.Log) raftmode.LogStorage
	// repliedBy lists, per client/number, the replicas that answered it.
	repliedBy map[string][]uint32
	// onSend, when set, sees every raft message a replica sends.
	onSend func(i int, m *raftpb.Message)
	// processing is the replica whose Process round runs (-1: none);
	// answeredInProcess counts the read answers it sent in that call.
	processing, answeredInProcess int
}

// delivery is a raft message or a state chunk in flight.
type delivery struct {
	from, to int
	msg      *raftpb.Message
	chunk    *wire.StateChunk
}

// ports is replica i's raftreplica Network, Snapshots and Observer: what it
// sends is delivered in the next round.
type ports struct {
	c *cluster
	i int
}

// SendRaft also checks etcd raft's persist-before-send rules
// (checkPersisted).
func (p ports) SendRaft(to uint32, m *raftpb.Message) bool {
	p.c.checkPersisted(p.i, m)
	if p.c.onSend != nil {
		p.c.onSend(p.i, m)
	}
	p.c.inflight = append(p.c.inflight, delivery{from: p.i, to: int(to), msg: m})
	return true
}

// checkPersisted fails the test when replica i sends m before its raft
// log holds what m vouches for: an acknowledgement of entries up to
// m.Index, a granted vote, or, for any message, the term it carries. A
// leader's append may carry entries its log does not hold yet (they are
// being persisted in the same Ready: raftmode's early messages), but
// only of a term its log holds.
func (c *cluster) checkPersisted(i int, m *raftpb.Message) {
	c.t.Helper()
	log := c.logs[i]
	hs, _, err := log.InitialState()
	if err != nil {
		c.t.Fatal(err)
	}
	last, err := log.LastIndex()
	if err != nil {
		c.t.Fatal(err)
	}
	if m.GetTerm() > hs.GetTerm() && m.GetType() != raftpb.MessageType_MsgPreVote && m.GetType() != raftpb.MessageType_MsgPreVoteResp {
		c.t.Fatalf("replica %d sends %v at term %d before its log holds that term (%d)", i, m.GetType(), m.GetTerm(), hs.GetTerm())
	}
	switch m.GetType() {
	case raftpb.MessageType_MsgAppResp:
		if !m.GetReject() && last < m.GetIndex() {
			c.t.Fatalf("replica %d acknowledges entries up to %d before its log holds them (last index %d)", i, m.GetIndex(), last)
		}
	case raftpb.MessageType_MsgVoteResp:
		if !m.GetReject() && (hs.GetVote() != m.GetTo() || hs.GetTerm() != m.GetTerm()) {
			c.t.Fatalf("replica %d grants its vote to %d at term %d before its log holds it (vote %d at term %d)", i, m.GetTo(), m.GetTerm(), hs.GetVote(), hs.GetTerm())
		}
	case raftpb.MessageType_MsgApp:
	default:
		if ents := m.GetEntries(); len(ents) > 0 && last < ents[len(ents)-1].GetIndex() {
			c.t.Fatalf("replica %d sends %v with entries up to %d before its log holds them (last index %d)", i, m.GetType(), ents[len(ents)-1].GetIndex(), last)
		}
	}
}

// SendStateRequest is answered at once from the peer's snapshots (the
// request's whole window); the chunks arrive in the next round.
func (p ports) SendStateRequest(to uint32, req *wire.StateRequest) {
	c := p.c
	if c.down[int(to)] || c.cut[int(to)] || c.cut[p.i] {
		return
	}
	c.stateRequests++
	for _, chunk := range statetransfer.ServeChunks(statetransfer.Pick(c.snaps[to], req.GetSequence()), req, 256) {
		c.inflight = append(c.inflight, delivery{from: int(to), to: p.i, chunk: chunk})
	}
}

func (p ports) Reply(r *wire.Reply) {
	if r.GetReadOnly() {
		p.c.reads[fmt.Sprintf("%x/%d", r.GetClientId(), r.GetRequestNumber())] = r
		return
	}
	key := fmt.Sprintf("%x/%d", r.GetClientId(), r.GetRequestNumber())
	p.c.replies[key] = r.GetResult()
	if p.c.repliedBy == nil {
		p.c.repliedBy = map[string][]uint32{}
	}
	p.c.repliedBy[key] = append(p.c.repliedBy[key], r.GetReplica())
}

func (p ports) ReadReplies(rs []*wire.Reply) {
	if p.c.processing == p.i {
		p.c.answeredInProcess += len(rs)
	}
	for _, r := range rs {
		p.Reply(r)
	}
}

func (p ports) Keep(s *execution.StateSnapshot) {
	snaps := append(p.c.snaps[p.i], s)
	if len(snaps) > 2 {
		snaps[0].Release()
		snaps = snaps[1:]
	}
	p.c.snaps[p.i] = snaps
}

func newCluster(t *testing.T, n int, interval uint64) *cluster {
	return newClusterCatchUp(t, n, interval, 0)
}

// newClusterCatchUp is newCluster with cluster.catchUp set.
func newClusterCatchUp(t *testing.T, n int, interval, catchUp uint64) *cluster {
	c := &cluster{t: t, down: map[int]bool{}, cut: map[int]bool{}, replies: map[string][]byte{}, reads: map[string]*wire.Reply{},
		interval: interval, catchUp: catchUp, n: n}
	for i := range n {
		c.add(i)
	}
	return c
}

// add opens replica i's database (the next one) and starts it.
func (c *cluster) add(i int) {
	c.dbs = append(c.dbs, c.openDB(i))
	c.logs = append(c.logs, nil)
	c.cores = append(c.cores, nil)
	c.drivers = append(c.drivers, nil)
	c.snaps = append(c.snaps, nil)
	c.start(i)
}

// openDB opens an empty database for replica i; the test's cleanup
// releases the snapshots the replica holds of it, then closes it.
func (c *cluster) openDB(i int) *storage.DB {
	c.t.Helper()
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if c.dbs[i] == db {
			c.releaseSnapshots(i)
		}
		db.Close()
	})
	return db
}

func (c *cluster) releaseSnapshots(i int) {
	for _, s := range c.snaps[i] {
		s.Release()
	}
	c.snaps[i] = nil
}

// start (re)builds replica i's core and driver from what its database
// holds, and starts the driver.
func (c *cluster) start(i int) {
	c.t.Helper()
	db := c.dbs[i]
	kv, err := execution.NewKV(db.LevelDB())
	if err != nil {
		c.t.Fatal(err)
	}
	var opts []execution.ExecutorOption
	if c.rules != nil {
		opts = append(opts, execution.WithMembership(*c.rules))
	}
	exec, err := execution.NewExecutor(db, kv, nil, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	log, err := raftlog.Open(db)
	if err != nil {
		c.t.Fatal(err)
	}
	core, err := raftmode.New(raftmode.Config{
		Index: uint32(i), N: c.n, Spare: c.spare[i], Log: c.logStorage(i, log), Executor: exec,
		Rand: rand.New(rand.NewPCG(uint64(i), 7)), ElectionTicks: 10, HeartbeatTicks: 2,
		SnapshotInterval: c.interval, SnapshotCatchUpEntries: cmp.Or(c.catchUp, c.interval), MaxBatchSize: 4,
		ReadTimeoutTicks: c.readTimeout, MaxPendingReads: c.maxReads,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.releaseSnapshots(i)
	p := ports{c: c, i: i}
	c.logs[i], c.cores[i] = log, core
	c.drivers[i] = raftreplica.New(raftreplica.Config{
		Self: uint32(i), N: c.n, Core: core, App: exec, Network: p, Snapshots: p,
	})
	if err := c.drivers[i].Start(); err != nil {
		c.t.Fatal(err)
	}
	delete(c.down, i)
}

func (c *cluster) logStorage(i int, l *raftlog.Log) raftmode.LogStorage {
	if c.wrapLog != nil {
		return c.wrapLog(i, l)
	}
	return l
}

func (c *cluster) round() {
	c.t.Helper()
	sent := c.inflight
	c.inflight = nil
	for _, d := range sent {
		if c.down[d.to] || c.cut[d.to] || c.cut[d.from] || (d.msg != nil && c.drop != nil && c.drop(d.msg)) {
			continue
		}
		if d.msg != nil {
			_ = c.drivers[d.to].Step(uint32(d.from), d.msg)
		} else if err := c.drivers[d.to].Chunk(uint32(d.from), d.chunk); err != nil {
			c.t.Fatalf("replica %d: %v", d.to, err)
		}
	}
	for i, d := range c.drivers {
		if c.down[i] {
			continue
		}
		d.Tick()
		c.processing, c.answeredInProcess = i, 0
		if err := d.Process(); err != nil {
			c.t.Fatalf("replica %d: %v", i, err)
		}
		c.processing = -1
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
	if err := c.drivers[to].Submit(&wire.Request{ClientId: client, RequestNumber: number, Operation: op}); err != nil {
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
	var first *raftmode.Core
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
	if first, _ := c.logs[l].FirstIndex(); first <= 2 {
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

// TestCompactionKeepsSnapshotCatchUpEntries: with SnapshotCatchUpEntries
// above the interval, the leader's log keeps at least that many entries
// behind its newest snapshot (after the first compaction, which drops the
// entries below the first snapshot as before), so a follower that far
// behind catches up from entries, without a state transfer.
func TestCompactionKeepsSnapshotCatchUpEntries(t *testing.T) {
	c := newClusterCatchUp(t, 3, 8, 100)
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	submit := func(from, to uint64) {
		for n := from; n <= to; n++ {
			c.submit(l, n, execution.EncodePut(fmt.Appendf(nil, "k%d", n%10), fmt.Appendf(nil, "v%d", n)))
			c.round()
		}
		c.runUntil(300, func() bool { return c.replied(to) })
	}
	submit(1, 30)
	lagging := (l + 1) % 3
	c.cut[lagging] = true
	submit(31, 90)
	snap := c.cores[l].Status().SnapshotIndex
	if first, _ := c.logs[l].FirstIndex(); snap < 80 || first != 9 {
		t.Fatalf("leader snapshot at %d, log from %d: want the log from 9 (the first compaction) kept", snap, first)
	}
	c.cut = map[int]bool{}
	c.runUntil(500, func() bool { return c.converged() })
	if c.stateRequests != 0 {
		t.Fatalf("the lagging follower sent %d state requests; want it to catch up from the log", c.stateRequests)
	}
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
	big := make([]byte, raftmode.DefaultMaxEntryBytes)
	if _, err := core.Submit(&wire.Request{ClientId: client, RequestNumber: 1, Operation: big}); !errors.Is(err, raftmode.ErrTooLarge) {
		t.Fatalf("oversized request: err %v, want ErrTooLarge", err)
	}
	// Requests that each fit but together do not are split over entries.
	c.runUntil(200, func() bool { return c.leader() >= 0 })
	l := c.leader()
	for n := uint64(2); n < 6; n++ {
		c.submit(l, n, execution.EncodePut([]byte("k"), make([]byte, raftmode.DefaultMaxEntryBytes/3)))
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
	c.dbs[i] = c.openDB(i)
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
