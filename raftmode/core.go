package raftmode

import (
	"errors"
	"fmt"
	"log/slog"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/wire"
)

// Errors from Submit and Step.
var (
	ErrQueueFull = errors.New("raftmode: pending request queue full")
	// ErrClientQueueFull: the request's client key has used its share of
	// the pending queue (requests or bytes).
	ErrClientQueueFull = errors.New("raftmode: too many pending requests from this client key")
	ErrTooLarge        = errors.New("raftmode: request larger than an entry may be")
	ErrTooOld          = errors.New("raftmode: request number below the client's window")
	ErrWrongSender     = errors.New("raftmode: message sender does not match the transport's peer")
	ErrNotForUs        = errors.New("raftmode: message addressed to another replica")
	ErrLocalMessage    = errors.New("raftmode: local raft message from the network")
	ErrWaitingOnState  = errors.New("raftmode: waiting for snapshot state")
)

// Output is what one Process call asks the runtime to do. Everything in
// it is already durable: the runtime sends Messages and Replies as they
// are.
type Output struct {
	// Messages go to other replicas (To is a raft ID: index+1).
	Messages []*raftpb.Message
	// Replies are the results of applied requests (and cached results of
	// retransmitted ones), for the clients that sent them: on a leader
	// every applied request's, on a follower only those its clients sent
	// to it (see answers).
	Replies []execution.Reply
	// Snapshot is a new application snapshot, taken at a snapshot index,
	// for the runtime to serve to followers that need state. The runtime
	// owns it and must Release it when it drops it.
	Snapshot *execution.StateSnapshot
	// NeedState, when set, means the Core cannot go on until the
	// application state at an index of at least NeedState.Index is
	// installed (execution.Executor.RestoreBegin ... RestoreFinish), after
	// which the runtime calls StateInstalled.
	NeedState *StateNeed
	// ReadReplies answer read-only requests (Core.Read): results and
	// failures.
	ReadReplies []ReadReply
	// AppliedBatches lists, for each applied entry that carried requests,
	// how many it carried.
	AppliedBatches []int
}

// StateNeed describes the application state a lagging replica needs.
type StateNeed struct {
	// Index is the lowest acceptable snapshot index.
	Index uint64
	// Digest is the state digest at exactly Index, when known (HasDigest).
	Digest    [32]byte
	HasDigest bool
	// From is the replica that sent the snapshot (the leader), the best
	// peer to ask first; -1 when unknown.
	From int
	// Peers are the other replicas the snapshot's configuration names;
	// nil: replicas 0 to n-1.
	Peers []uint32
}

// Status is a summary of the Core's state.
type Status struct {
	Term      uint64
	Leader    int // replica index, -1 when unknown
	IsLeader  bool
	Commit    uint64
	Applied   uint64 // the executor's last executed index
	LastIndex uint64
	// SnapshotIndex is the index of the latest snapshot in the log.
	SnapshotIndex   uint64
	PendingRequests int
	// PendingReads counts the read-only requests waiting for an answer.
	PendingReads    int
	WaitingForState bool
	// Epoch is the configuration's epoch; Removed reports that a change
	// removed this replica.
	Epoch   uint64
	Removed bool
}

type requestKey struct {
	client string
	number uint64
}

// Core is one Raft-mode replica's logic. Not safe for concurrent use.
type Core struct {
	cfg  Config
	log  *slog.Logger
	rn   *raft.RawNode
	exec *execution.Executor

	pending    []*wire.Request
	pendingSet map[requestKey]struct{}
	// heldTicks counts the ticks pending requests were held (holdProposals).
	heldTicks int
	// direct are the requests a client sent to this replica while it did
	// not lead, which it answers when it applies them (replies.go).
	direct map[requestKey]struct{}
	// confQueue holds configuration change requests waiting to be
	// proposed, one at a time (confchange.go); confPendingIndex is the
	// index up to which the leader may have an unapplied one.
	confQueue        []*wire.Request
	confPendingIndex uint64
	// budget bounds the pending requests per client key and in bytes
	// (see admit).
	budget pendingBudget
	// reads are the leader's pending read-only requests (read.go).
	reads readQueue

	lead      uint64
	term      uint64
	vote      uint64
	commit    uint64
	isLeader  bool
	confState *raftpb.ConfState
	snapIndex uint64

	// extra are messages the Core adds to raft's (see dataLossReport).
	extra []*raftpb.Message
	// transferTicks counts ticks since this leader started handing
	// leadership over (see handOver); 0 when not handing over.
	transferTicks int

	electionElapsed int
	electionTimeout int

	// need is the state the Core waits for; held is the Ready (carrying a
	// snapshot) that waits with it.
	need     *StateNeed
	held     *raft.Ready
	snapFrom int
}

// New builds a Core from what cfg.Log and cfg.Executor hold. A fresh log
// is bootstrapped with the N voters at index 1.
func New(cfg Config) (*Core, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	c := &Core{
		cfg: cfg, log: cfg.Logger, exec: cfg.Executor,
		pendingSet: make(map[requestKey]struct{}), direct: make(map[requestKey]struct{}), snapFrom: -1,
		budget: newPendingBudget(),
	}
	c.reads.nonce = cfg.Rand.Uint64()
	if err := c.bootstrap(); err != nil {
		return nil, err
	}
	hs, cs, err := cfg.Log.InitialState()
	if err != nil {
		return nil, fmt.Errorf("raftmode: initial state: %w", err)
	}
	first, err := cfg.Log.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("raftmode: first index: %w", err)
	}
	snap, err := cfg.Log.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("raftmode: snapshot: %w", err)
	}
	c.confState, c.term, c.vote, c.commit = cs, hs.GetTerm(), hs.GetVote(), hs.GetCommit()
	c.snapIndex = snap.GetMetadata().GetIndex()
	// Raft redelivers the committed entries after the latest snapshot:
	// the normal ones the executor applied already are skipped, the
	// configuration changes among them applied to raft again (see
	// applyConfEntry).
	applied := min(c.snapIndex, c.exec.LastExecuted(), hs.GetCommit())
	if c.exec.LastExecuted() < first-1 {
		// The log starts after the application state: fetch the state.
		c.need = &StateNeed{Index: first - 1, From: -1, Peers: peersOf(cs, cfg.Index)}
		if d, ok := decodeSnapshotData(snap.GetData()); ok && c.snapIndex == first-1 {
			c.need.Digest, c.need.HasDigest = d, true
		}
		applied = 0
		c.log.Info("raft log starts after the application state; fetching state", "executed", c.exec.LastExecuted(), "first_index", first)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        RaftID(cfg.Index),
		ElectionTick:              disabledElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   cfg.Log,
		Applied:                   applied,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  cfg.MaxSizePerMsg,
		MaxUncommittedEntriesSize: 64 * cfg.MaxSizePerMsg,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		PreVote:                   true,
		Logger:                    discardRaftLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("raftmode: %w", err)
	}
	c.rn = rn
	c.resetElectionTimer()
	if c.need == nil && c.exec.LastExecuted() <= c.snapIndex {
		c.checkConfState()
	}
	return c, nil
}

// bootstrap writes the initial configuration into an empty log: a
// snapshot at index 1, term 1 listing every replica as a voter, the same
// on every replica (so a wiped replica rejoins with a matching log).
func (c *Core) bootstrap() error {
	last, err := c.cfg.Log.LastIndex()
	if err != nil {
		return fmt.Errorf("raftmode: last index: %w", err)
	}
	_, cs, err := c.cfg.Log.InitialState()
	if err != nil {
		return fmt.Errorf("raftmode: initial state: %w", err)
	}
	if last > 0 || len(cs.GetVoters()) > 0 || c.cfg.Spare {
		// A spare starts with no configuration: the leader's snapshot
		// brings one once it is added.
		return nil
	}
	voters := make([]uint64, c.cfg.N)
	for i := range voters {
		voters[i] = RaftID(uint32(i))
	}
	if c.exec.LastExecuted() == 0 {
		if _, err := c.exec.Apply(1, nil); err != nil {
			return fmt.Errorf("raftmode: bootstrap: %w", err)
		}
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)),
		ConfState: &raftpb.ConfState{Voters: voters},
	}}
	if err := c.cfg.Log.Save(nil, nil, snap); err != nil {
		return fmt.Errorf("raftmode: bootstrap: %w", err)
	}
	return nil
}

// Executor returns the executor the Core applies to (for the runtime's
// state transfer, which restores into it while the Core waits).
func (c *Core) Executor() *execution.Executor { return c.exec }

// Tick advances time by one tick.
func (c *Core) Tick() {
	c.tickReads()
	if len(c.pending) > 0 {
		c.heldTicks++
	}
	if c.need != nil {
		return
	}
	c.rn.Tick()
	if c.isLeader {
		c.electionElapsed = 0
		c.tickHandOver()
		c.handOverIfRemoved()
		return
	}
	c.electionElapsed++
	if c.electionElapsed >= c.electionTimeout {
		c.resetElectionTimer()
		if err := c.rn.Campaign(); err != nil {
			c.log.Debug("campaign", "err", err)
		}
	}
}

func (c *Core) resetElectionTimer() {
	c.electionElapsed = 0
	c.electionTimeout = c.cfg.ElectionTicks + c.cfg.Rand.IntN(c.cfg.ElectionTicks)
}

// Step hands the Core a raft message that the transport received from
// replica from.
func (c *Core) Step(from uint32, m *raftpb.Message) error {
	switch {
	case m.GetFrom() != RaftID(from):
		return fmt.Errorf("%w: from %d on replica %d's stream", ErrWrongSender, m.GetFrom(), from)
	case m.GetTo() != RaftID(c.cfg.Index):
		return fmt.Errorf("%w: to %d", ErrNotForUs, m.GetTo())
	case raft.IsLocalMsg(m.GetType()) || raft.IsLocalMsgTarget(m.GetFrom()):
		return fmt.Errorf("%w: %s", ErrLocalMessage, m.GetType())
	case c.need != nil:
		return ErrWaitingOnState
	}
	switch m.GetType() {
	case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat, raftpb.MessageType_MsgSnap:
		if m.GetTerm() >= c.term {
			c.electionElapsed = 0
		}
		if m.GetType() == raftpb.MessageType_MsgSnap {
			c.snapFrom = int(from)
		}
		if m.GetType() == raftpb.MessageType_MsgHeartbeat {
			c.checkHeartbeatCommit(m)
		}
	case raftpb.MessageType_MsgAppResp:
		if c.isLeader && m.GetReject() && m.GetTerm() == c.term {
			c.checkFollowerDataLoss(from, m)
		}
	case raftpb.MessageType_MsgProp:
		if !c.queueForwarded(m) {
			return nil
		}
	}
	if err := c.rn.Step(m); err != nil {
		return fmt.Errorf("raftmode: step %s from %d: %w", m.GetType(), from, err)
	}
	return nil
}

// Submit queues a client request for the next entry. A request already
// executed yields its cached reply; one already queued is ignored.
func (c *Core) Submit(req *wire.Request) (*execution.Reply, error) {
	switch c.exec.Status(req.GetClientId(), req.GetRequestNumber()) {
	case execution.RequestExecuted:
		result, _ := c.exec.CachedReply(req.GetClientId(), req.GetRequestNumber())
		return &execution.Reply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), Result: result}, nil
	case execution.RequestTooOld:
		return nil, ErrTooOld
	}
	if req.GetReadOnly() {
		return nil, ErrReadOnlyOrdered
	}
	k := requestKey{string(req.GetClientId()), req.GetRequestNumber()}
	if _, ok := c.pendingSet[k]; ok {
		return nil, nil
	}
	if isConfigChange(req) {
		return nil, c.submitConfChange(req, k)
	}
	if proto.Size(req) > c.cfg.MaxEntryBytes-entryOverhead {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, proto.Size(req))
	}
	if len(c.pending) >= c.cfg.MaxPendingRequests {
		return nil, ErrQueueFull
	}
	if err := c.budget.admit(c.cfg, req); err != nil {
		return nil, err
	}
	c.pendingSet[k] = struct{}{}
	c.pending = append(c.pending, req)
	c.noteDirect(k)
	return nil, nil
}

// Status summarises the Core.
func (c *Core) Status() Status {
	last, _ := c.cfg.Log.LastIndex()
	leader := -1
	if c.lead != raft.None {
		leader = int(c.lead - 1)
	}
	return Status{
		Term: c.term, Leader: leader, IsLeader: c.isLeader, Commit: c.commit,
		Applied: c.exec.LastExecuted(), LastIndex: last, SnapshotIndex: c.snapIndex,
		PendingRequests: len(c.pending) + len(c.confQueue), PendingReads: c.reads.count, WaitingForState: c.need != nil,
		Epoch: c.Epoch(), Removed: c.Removed(),
	}
}

// ReportSnapshot tells raft that the runtime sent a MsgSnap to replica
// to: the follower fetches the state itself, and raft goes back to
// probing it with appends, which the follower takes once its state is
// installed.
func (c *Core) ReportSnapshot(to uint32, ok bool) {
	status := raft.SnapshotFinish
	if !ok {
		status = raft.SnapshotFailure
	}
	c.rn.ReportSnapshot(RaftID(to), status)
}

// ReportUnreachable tells raft that a message to replica to could not be
// queued, so it stops pipelining to it until it answers again.
func (c *Core) ReportUnreachable(to uint32) { c.rn.ReportUnreachable(RaftID(to)) }

// Term returns the current term.
func (c *Core) Term() uint64 { return c.term }

// Leader returns the index of the replica believed to lead, or -1.
func (c *Core) Leader() int {
	if c.lead == raft.None {
		return -1
	}
	return int(c.lead - 1)
}

// discardRaftLogger silences etcd raft's own logging (the Core logs what
// matters through slog).
type discardRaftLogger struct{}

func (discardRaftLogger) Debug(...any)              {}
func (discardRaftLogger) Debugf(string, ...any)     {}
func (discardRaftLogger) Error(...any)              {}
func (discardRaftLogger) Errorf(string, ...any)     {}
func (discardRaftLogger) Info(...any)               {}
func (discardRaftLogger) Infof(string, ...any)      {}
func (discardRaftLogger) Warning(...any)            {}
func (discardRaftLogger) Warningf(string, ...any)   {}
func (discardRaftLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardRaftLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (discardRaftLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardRaftLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
