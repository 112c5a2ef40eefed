package raftmode

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/wire"
)

// Configuration changes.
//
// A client request with config_change is ordered as a ConfChangeV2 entry
// whose Context is the encoded request. Every replica applies that entry
// by running the request through Executor.Apply at the entry's index (so
// the executor's sequence stays contiguous and the change executes exactly
// once, under the executor's membership rules), then hands raft the change
// the executor's outcome implies (raftChange): the new members join as
// learners (a simple change: no voter changes); a removal of a voter
// enters a joint configuration (below); a key rotation changes no raft
// membership; a refused change changes nothing (it is not handed to raft).
// The raft change is derived from the executor's outcome and raft's
// configuration at the entry, never from what the proposer wrote, so every
// replica applies the same one.
//
// Every change of raft's voters goes through joint consensus with an
// explicit transition (joint.go): the entry enters C_old,new
// (ConfChangeTransitionJointExplicit), in which elections and commits need
// a majority of the old voters and one of the new; the leader proposes
// the leave (an empty ConfChangeV2) as soon as it has applied the entry
// that entered it. A leader elected while the configuration is joint
// (after a crash, a partition or a restart: raft's configuration is
// restored from the latest snapshot and the entries after it) proposes
// the leave as soon as it has applied its log, so a cluster with a leader
// never stays joint. The leave applies only to a joint configuration
// (else it changes nothing). Why it is safe: in C_old,new no decision is
// taken without a majority of C_old, so nothing C_old could still decide
// conflicts with it, and C_new alone decides only once the leave is
// committed, which needed a majority of C_new and of C_old.
//
// A learner is promoted to voter by the leader once its log matches the
// leader's commit index: one ConfChangeV2 entry with an empty Context
// promotes every learner that has caught up (two spares added together
// become voters in one joint configuration); it applies to the named
// replicas that still are learners, and changes nothing when none is or
// when the configuration is joint. One configuration change is in flight
// at a time: the leader proposes the next (the leave first, then a
// promotion, then the queued requests in order) only once it has applied
// the last; the requests a follower forwards join the leader's queue
// (queueForwarded) rather than raft's log, which would drop them; a
// request that commits while joint anyway is refused, not executed. A
// leader that removes itself leads on through the joint configuration,
// proposes the leave, and then hands leadership over (handOverIfRemoved).
//
// Every entry that changes raft's configuration (the leave included) is
// followed by a snapshot at its index (the same on every replica), with
// raft's configuration, joint or not (VotersOutgoing): the snapshot a new
// learner receives then names it (etcd raft refuses a snapshot that does
// not), and at restart raft's configuration (from the latest snapshot)
// includes every change but possibly the last one executed, which New's
// replay (Applied = the snapshot's index) applies again, deriving the
// same change from the same configuration. A replica that installs state
// past a snapshot replays the changes between the two the same way
// (replayedChange).

// maxPendingConfChanges bounds the configuration change requests queued at
// one replica.
const maxPendingConfChanges = 16

// isConfigChange reports whether req asks for a configuration change.
func isConfigChange(req *wire.Request) bool { return len(req.GetConfigChange()) > 0 }

// submitConfChange queues a configuration change request (already known
// to be new and not queued).
func (c *Core) submitConfChange(req *wire.Request, k requestKey) error {
	for _, q := range c.confQueue {
		if q.GetRequestNumber() == req.GetRequestNumber() && string(q.GetClientId()) == string(req.GetClientId()) {
			return nil // queued already (propose clears pendingSet)
		}
	}
	if len(c.confQueue) >= maxPendingConfChanges {
		return ErrQueueFull
	}
	if proto.Size(req) > c.cfg.MaxEntryBytes-entryOverhead {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, proto.Size(req))
	}
	c.pendingSet[k] = struct{}{}
	c.confQueue = append(c.confQueue, req)
	return nil
}

// noopConfChange is the change a refused or obsolete configuration entry
// applies: raft skips a change of node 0.
func noopConfChange() *raftpb.ConfChangeV2 {
	return &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: new(uint64(0))}}}
}

func single(t raftpb.ConfChangeType, index uint32) *raftpb.ConfChangeSingle {
	return &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: new(RaftID(index))}
}

func isNoop(cc *raftpb.ConfChangeV2) bool {
	for _, ch := range cc.GetChanges() {
		if ch.GetNodeId() != 0 {
			return false
		}
	}
	return true
}

// proposedChange is the raft change a configuration change request asks
// for, by its kind, with the request as Context: the proposal's record
// only (what an apply hands raft is derived from the executor's outcome
// and raft's configuration: raftChange).
func proposedChange(req *wire.Request) *raftpb.ConfChangeV2 {
	cc := noopConfChange()
	cc.Context = mustMarshal(req)
	sc, err := membership.DecodeSignedChange(req.GetConfigChange())
	if err != nil {
		return cc
	}
	ch, err := membership.DecodeChange(sc.Change)
	if err != nil {
		return cc
	}
	switch ch.Kind {
	case membership.AddReplica:
		cc.Changes = []*raftpb.ConfChangeSingle{single(raftpb.ConfChangeType_ConfChangeAddLearnerNode, ch.Member.Index)}
	case membership.RemoveReplica:
		cc.Changes = []*raftpb.ConfChangeSingle{single(raftpb.ConfChangeType_ConfChangeRemoveNode, ch.Member.Index)}
	}
	return cc
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("raftmode: encoding a request: %v", err)) // a decoded request always encodes
	}
	return b
}

// confChangeInFlight reports whether a configuration change proposed by
// this leader (or inherited at its election) may still be unapplied: etcd
// raft drops a second one silently meanwhile.
func (c *Core) confChangeInFlight() bool { return c.exec.LastExecuted() < c.confPendingIndex }

// proposeConfChanges proposes the next configuration change: at the
// leader, once no change is in flight, the leave of a joint configuration
// first, then the promotion of the learners that caught up, then the
// queued requests one at a time; a follower forwards its queued requests
// to the leader, which queues them in turn (queueForwarded).
func (c *Core) proposeConfChanges() {
	if c.lead == 0 || c.need != nil {
		return
	}
	if !c.isLeader {
		for _, req := range c.confQueue {
			if err := c.rn.ProposeConfChange(proposedChange(req)); err != nil {
				c.log.Debug("configuration change proposal dropped", "err", err)
			}
		}
		c.clearConfQueue()
		return
	}
	if c.confChangeInFlight() {
		return
	}
	if c.Joint() {
		c.log.Info("leaving the joint configuration", "voters", c.confState.GetVoters(), "outgoing", c.confState.GetVotersOutgoing())
		c.proposeConf(leaveJoint())
		return
	}
	if c.promoteLearners() {
		return
	}
	if len(c.confQueue) == 0 {
		return
	}
	req := c.confQueue[0]
	c.confQueue = slices.Delete(c.confQueue, 0, 1)
	delete(c.pendingSet, requestKey{string(req.GetClientId()), req.GetRequestNumber()})
	c.proposeConf(proposedChange(req))
}

func (c *Core) clearConfQueue() {
	for _, req := range c.confQueue {
		delete(c.pendingSet, requestKey{string(req.GetClientId()), req.GetRequestNumber()})
	}
	clear(c.confQueue)
	c.confQueue = c.confQueue[:0]
}

// queueForwarded takes, at the leader, the configuration change requests
// a follower forwarded (the ConfChangeV2 entries of a MsgProp whose
// Context is a request) into the queue, where they wait their turn,
// instead of letting raft append them: etcd raft's leader turns a change
// into an empty entry while another is in flight or the configuration is
// joint, and the request would be lost. Other configuration entries (a
// follower proposes none) are dropped, normal entries stay in m. A request
// that is too large, already executed or finds the queue full is dropped
// (its client retransmits). It reports whether m, with the entries that
// are left, is still to be stepped (raft panics on an empty proposal).
func (c *Core) queueForwarded(m *raftpb.Message) bool {
	if !c.isLeader {
		return len(m.GetEntries()) > 0
	}
	kept := m.GetEntries()[:0]
	for _, e := range m.GetEntries() {
		if e.GetType() == raftpb.EntryType_EntryNormal {
			kept = append(kept, e)
			continue
		}
		req := new(wire.Request)
		if ctx := decodeConfEntry(e).GetContext(); len(ctx) == 0 || proto.Unmarshal(ctx, req) != nil || !isConfigChange(req) {
			continue
		}
		if _, err := c.Submit(req); err != nil {
			c.log.Debug("forwarded configuration change dropped", "err", err)
		}
	}
	m.Entries = kept
	return len(kept) > 0
}

// proposeConf proposes cc at the leader and records its index.
func (c *Core) proposeConf(cc *raftpb.ConfChangeV2) {
	if err := c.rn.ProposeConfChange(cc); err != nil {
		c.log.Debug("configuration change proposal dropped", "err", err)
	}
	// The Ready that follows in this Process carries the entry, and
	// trackConfEntries records its index.
}

// trackConfEntries records, at the leader, the index of the
// configuration change entries a Ready appends; a new leader (elected)
// treats its whole log as possibly holding one, as etcd raft does.
func (c *Core) trackConfEntries(rd *raft.Ready, elected bool) {
	if elected {
		last, _ := c.cfg.Log.LastIndex()
		c.confPendingIndex = max(c.confPendingIndex, last)
	}
	for _, e := range rd.Entries {
		if elected || e.GetType() != raftpb.EntryType_EntryNormal {
			c.confPendingIndex = max(c.confPendingIndex, e.GetIndex())
		}
	}
}

// applyConfEntry applies a committed configuration change entry (see the
// top of this file). An entry at or below the executor's last executed
// index (a restart replaying the entries after the latest snapshot) is not
// executed again; its raft change is derived from the recorded outcome.
func (c *Core) applyConfEntry(e *raftpb.Entry, out *Output) error {
	index, last := e.GetIndex(), c.exec.LastExecuted()
	replay := index <= last
	if !replay && index != last+1 {
		return fmt.Errorf("raftmode: committed entry %d after executed %d: gap", index, last)
	}
	cc := decodeConfEntry(e)
	var req *wire.Request
	if ctx := cc.GetContext(); len(ctx) > 0 {
		req = new(wire.Request)
		if err := proto.Unmarshal(ctx, req); err != nil || !isConfigChange(req) {
			c.log.Warn("undecodable configuration change applied as empty", "index", index, "err", err)
			req = nil
		}
	}
	if !replay {
		var reqs []execution.Request
		if reason := c.refusal(req); reason != "" {
			// Not executed (so not in the client's window): a retransmission
			// is checked again (once the learners are voters, or the joint
			// configuration is left).
			out.Replies = append(out.Replies, execution.Reply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), Result: []byte(execution.ConfigChangeRefused + reason)})
		} else if req != nil {
			reqs = []execution.Request{{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), ConfigChange: req.GetConfigChange()}}
		}
		replies, err := c.exec.Apply(index, reqs)
		if err != nil {
			return fmt.Errorf("raftmode: %w", err)
		}
		out.Replies = append(out.Replies, replies...)
	}
	var change *raftpb.ConfChangeV2
	switch {
	case req != nil && replay:
		change = c.replayedChange(index, req)
	case req != nil:
		change = c.membershipChange(index)
	case isLeave(cc):
		change = c.leave()
	case len(cc.GetContext()) == 0:
		change = c.promotion(cc)
	default:
		change = noopConfChange()
	}
	changed := !changesNothing(change)
	if changed {
		c.confState = c.rn.ApplyConfChange(change)
	}
	if index >= c.exec.LastExecuted() {
		c.checkConfState()
	}
	if changed {
		c.log.Info("raft configuration changed", "index", index, "voters", c.confState.GetVoters(), "outgoing", c.confState.GetVotersOutgoing(),
			"learners", c.confState.GetLearners(), "joint", c.Joint(), "epoch", c.exec.Membership().Current.Epoch)
		if c.Removed() && !c.Joint() {
			c.log.Warn("this replica was removed from the cluster", "index", index)
		}
	}
	if changed || index%c.cfg.SnapshotInterval == 0 {
		return c.snapshot(index, out)
	}
	return nil
}

// decodeConfEntry returns an entry's change as a ConfChangeV2 (empty when
// undecodable: applied as a no-op).
func decodeConfEntry(e *raftpb.Entry) *raftpb.ConfChangeV2 {
	switch e.GetType() {
	case raftpb.EntryType_EntryConfChange:
		var cc raftpb.ConfChange
		if proto.Unmarshal(e.GetData(), &cc) == nil {
			return cc.AsV2()
		}
	case raftpb.EntryType_EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if proto.Unmarshal(e.GetData(), &cc) == nil {
			return &cc
		}
	}
	return &raftpb.ConfChangeV2{}
}

// membershipChange is the raft change of the configuration change request
// applied at index: the difference between the configurations before and
// after it when the executor accepted it there, a no-op otherwise.
func (c *Core) membershipChange(index uint64) *raftpb.ConfChangeV2 {
	m := c.exec.Membership()
	if m.ExecutedAt != index || m.Current.Epoch != m.Previous.Epoch+1 {
		return noopConfChange()
	}
	var adds, removes []uint32
	for _, mem := range m.Current.Members {
		if m.Previous.Position(mem.Index) < 0 {
			adds = append(adds, mem.Index)
		}
	}
	for _, mem := range m.Previous.Members {
		if m.Current.Position(mem.Index) < 0 {
			removes = append(removes, mem.Index)
		}
	}
	return c.raftChange(adds, removes)
}

// replayedChange is the raft change of a configuration change request
// executed at index before a restart or inside installed state: the
// executor's record when index is where its latest change executed, else
// the reply cached for the request, which says whether it was accepted at
// index ("ok: epoch E from sequence index+1"), the change itself saying
// what. A request whose reply left the cache is taken as refused (a
// mismatch then fails checkConfState).
func (c *Core) replayedChange(index uint64, req *wire.Request) *raftpb.ConfChangeV2 {
	if c.exec.Membership().ExecutedAt == index {
		return c.membershipChange(index)
	}
	result, ok := c.exec.CachedReply(req.GetClientId(), req.GetRequestNumber())
	var epoch, from uint64
	if !ok || !strings.HasPrefix(string(result), execution.ConfigChangeAccepted) {
		return noopConfChange()
	}
	if _, err := fmt.Sscanf(string(result), execution.ConfigChangeAccepted+"epoch %d from sequence %d", &epoch, &from); err != nil || from != index+1 {
		return noopConfChange()
	}
	sc, err := membership.DecodeSignedChange(req.GetConfigChange())
	if err != nil {
		return noopConfChange()
	}
	ch, err := membership.DecodeChange(sc.Change)
	if err != nil {
		return noopConfChange()
	}
	switch ch.Kind {
	case membership.AddReplica:
		return c.raftChange([]uint32{ch.Member.Index}, nil)
	case membership.RemoveReplica:
		return c.raftChange(nil, []uint32{ch.Member.Index})
	}
	return noopConfChange()
}

// checkConfState panics unless raft's incoming configuration (voters,
// learners and the learners staged for the leave) names exactly the
// members of the executor's configuration: the two are changed by the
// same entries, so a difference is a broken invariant. The outgoing
// voters of a joint configuration are C_old's: a removed member votes
// there until the leave.
// Without membership rules (no members recorded), or on a spare that has
// no configuration yet, there is nothing to compare.
func (c *Core) checkConfState() {
	cur := c.exec.Membership().Current
	if len(cur.Members) == 0 || len(c.confState.GetVoters())+len(c.confState.GetLearners()) == 0 {
		return
	}
	var got []uint64
	got = append(got, c.confState.GetVoters()...)
	got = append(got, c.confState.GetLearners()...)
	got = append(got, c.confState.GetLearnersNext()...)
	slices.Sort(got)
	got = slices.Compact(got)
	want := make([]uint64, len(cur.Members))
	for i, m := range cur.Members {
		want[i] = RaftID(m.Index)
	}
	if !slices.Equal(got, want) {
		panic(fmt.Sprintf("raftmode: raft configuration %v disagrees with epoch %d's members %v", got, cur.Epoch, want))
	}
}

// handOverIfRemoved hands leadership to the most up-to-date voter when a
// configuration change removed this leader. Raft applies a configuration
// when it applies the entry, so the voters that have not yet learned that
// the removal committed still count this replica: were it to step down at
// once (raft's StepDownOnRemoval), a longer log than theirs would refuse
// them its vote, and a two-voter configuration could elect no one. A
// hand-over waits until the new leader's log matches this one's, which
// then grants its vote.
//
// etcd raft sends the transferee one MsgTimeoutNow, and a removed leader
// cannot abort the transfer to start it again (raft finds no progress of
// its own): were that message lost, the hand-over would hang. The Core
// therefore resends it every heartbeat interval while the transferee's
// log matches this one's.
//
// While the configuration is joint, a leader that the change removed still
// votes in C_old and leads on: it proposes the leave, and hands over once
// that is applied.
func (c *Core) handOverIfRemoved() {
	self := RaftID(c.cfg.Index)
	if slices.Contains(c.confState.GetVoters(), self) || c.Joint() {
		return
	}
	if c.transferTicks > 0 {
		if c.transferTicks%c.cfg.HeartbeatTicks == 0 {
			c.resendTimeoutNow()
		}
		return
	}
	st := c.rn.Status()
	var to uint64
	for _, id := range c.confState.GetVoters() {
		if to == 0 || st.Progress[id].Match > st.Progress[to].Match {
			to = id
		}
	}
	if to == 0 {
		return
	}
	c.log.Info("removed from the configuration while leading; handing leadership over", "to", to-1)
	c.rn.TransferLeader(to)
	c.transferTicks = 1
}

// resendTimeoutNow sends the leadership transferee a MsgTimeoutNow again
// when its log matches this leader's.
func (c *Core) resendTimeoutNow() {
	st := c.rn.Status()
	to := st.LeadTransferee
	last, err := c.cfg.Log.LastIndex()
	if to == raft.None || err != nil || st.Progress[to].Match != last {
		return
	}
	c.extra = append(c.extra, &raftpb.Message{
		Type: raftpb.MessageType_MsgTimeoutNow.Enum(), To: new(to), From: new(RaftID(c.cfg.Index)), Term: new(c.term),
	})
}

// Membership returns the configuration in force after the last applied
// entry (the executor's; the zero Config without membership rules).
func (c *Core) Membership() membership.Config { return c.exec.Membership().Current }

// Epoch returns the epoch of Membership.
func (c *Core) Epoch() uint64 { return c.exec.Membership().Current.Epoch }

// Removed reports whether a configuration change removed this replica: it
// takes no further part once the configuration is no longer joint (until
// then raft counts it among the outgoing voters: OutgoingMembers) and the
// runtime stops.
func (c *Core) Removed() bool { return c.exec.Membership().Current.IsRetired(c.cfg.Index) }

// ConfState returns raft's configuration after the last applied entry
// (the caller must not modify it).
func (c *Core) ConfState() *raftpb.ConfState { return c.confState }

// Peers returns the indices of the other replicas in raft's configuration
// (voters and learners), in ascending order.
func (c *Core) Peers() []uint32 { return peersOf(c.confState, c.cfg.Index) }

func peersOf(cs *raftpb.ConfState, self uint32) []uint32 {
	var out []uint32
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners()} {
		for _, id := range set {
			if id != RaftID(self) && id != 0 {
				out = append(out, uint32(id-1))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// configHistory answers a config_query: a ConfigHistory holding the
// current configuration only (a crash-fault cluster certifies nothing).
func (c *Core) configHistory() ([]byte, error) {
	cur := c.exec.Membership().Current
	if len(cur.Members) == 0 {
		return nil, errNoMembership
	}
	return mustMarshal(&wire.ConfigHistory{Current: cur.Encode()}), nil
}

var errNoMembership = errors.New("raftmode: this replica runs without membership rules")
