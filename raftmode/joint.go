package raftmode

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/wire"
)

// Joint consensus (see the top of confchange.go for the whole procedure).
//
// Every change of raft's voters enters a joint configuration C_old,new
// with an explicit transition (ConfChangeTransitionJointExplicit): the
// incoming voters are C_new, the outgoing ones C_old, and every decision
// (an election, a commit) needs a majority of each. The leader leaves it
// with the empty ConfChangeV2 once the entry that entered it is applied
// (proposeConfChanges); a new leader that finds raft's configuration
// joint, after an election or a restart, proposes the leave in the same
// way, so no cluster stays joint while it has a leader. While the
// configuration is joint no other change is proposed (etcd raft refuses
// one), governed changes wait in the queue, and one that commits anyway
// is refused without being executed (refusal).

// isJoint reports whether cs is a joint configuration.
func isJoint(cs *raftpb.ConfState) bool { return len(cs.GetVotersOutgoing()) > 0 }

// Joint reports whether raft's configuration after the last applied entry
// is joint (C_old,new): a change of the voters entered it and its leave
// has not been applied yet.
func (c *Core) Joint() bool { return isJoint(c.confState) }

// enterJoint is the ConfChangeV2 that enters a joint configuration
// applying changes to the incoming voters, left by an explicit leave.
func enterJoint(changes []*raftpb.ConfChangeSingle) *raftpb.ConfChangeV2 {
	return &raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransition_ConfChangeTransitionJointExplicit.Enum(), Changes: changes}
}

// leaveJoint is the ConfChangeV2 that leaves a joint configuration (an
// empty one: no changes, no context).
func leaveJoint() *raftpb.ConfChangeV2 { return &raftpb.ConfChangeV2{} }

// isLeave reports whether cc, an entry's change with an empty Context, is
// the leave of a joint configuration.
func isLeave(cc *raftpb.ConfChangeV2) bool {
	return len(cc.GetContext()) == 0 && cc.LeaveJoint()
}

// changesNothing reports whether cc, a change applyConfEntry derived,
// leaves raft's configuration as it is (it is then not handed to raft:
// etcd raft refuses even a change of node 0 in a joint configuration).
func changesNothing(cc *raftpb.ConfChangeV2) bool { return !cc.LeaveJoint() && isNoop(cc) }

// raftChange is the raft change that adds the replicas adds as learners
// and removes the replicas removes, applied on top of raft's current
// configuration (which is not joint: refusal refused the request
// otherwise). A change that removes a voter, or makes more than one
// change, enters a joint configuration; one learner added or removed is a
// simple change (it changes no voter). It depends on raft's configuration
// at the entry and the executor's outcome only, the same on every
// replica, at the first apply and at a replay.
func (c *Core) raftChange(adds, removes []uint32) *raftpb.ConfChangeV2 {
	var changes []*raftpb.ConfChangeSingle
	for _, i := range adds {
		changes = append(changes, single(raftpb.ConfChangeType_ConfChangeAddLearnerNode, i))
	}
	voters := false
	for _, i := range removes {
		changes = append(changes, single(raftpb.ConfChangeType_ConfChangeRemoveNode, i))
		voters = voters || slices.Contains(c.confState.GetVoters(), RaftID(i))
	}
	switch {
	case len(changes) == 0:
		return noopConfChange() // a key rotation or an admin change
	case voters || len(changes) > 1:
		return enterJoint(changes)
	}
	return &raftpb.ConfChangeV2{Changes: changes}
}

// leave is the raft change of a leave entry: it leaves the joint
// configuration, or changes nothing when raft's is not joint (a leave
// that a former leader proposed as well; etcd raft refuses to propose
// one, this only keeps a replay safe).
func (c *Core) leave() *raftpb.ConfChangeV2 {
	if !c.Joint() {
		return noopConfChange()
	}
	return leaveJoint()
}

// promotion is the raft change of a promotion entry (a ConfChangeV2 with
// an empty Context whose changes make learners voters): one joint
// configuration promoting every named replica that still is a learner;
// nothing when none is, or when the configuration is joint already. Raft's
// configuration alone decides, so a replay promotes exactly as the first
// apply did.
func (c *Core) promotion(cc *raftpb.ConfChangeV2) *raftpb.ConfChangeV2 {
	if c.Joint() {
		return noopConfChange()
	}
	var changes []*raftpb.ConfChangeSingle
	for _, ch := range cc.GetChanges() {
		id := ch.GetNodeId()
		if ch.GetType() != raftpb.ConfChangeType_ConfChangeAddNode || id == 0 || !slices.Contains(c.confState.GetLearners(), id) {
			continue
		}
		if !slices.ContainsFunc(changes, func(s *raftpb.ConfChangeSingle) bool { return s.GetNodeId() == id }) {
			changes = append(changes, single(raftpb.ConfChangeType_ConfChangeAddNode, uint32(id-1)))
		}
	}
	if len(changes) == 0 {
		return noopConfChange()
	}
	return enterJoint(changes)
}

// promoteLearners proposes, at the leader, one joint change that promotes
// every learner whose log matches the leader's commit index, and reports
// whether it did.
func (c *Core) promoteLearners() bool {
	if len(c.confState.GetLearners()) == 0 {
		return false
	}
	st := c.rn.Status()
	var changes []*raftpb.ConfChangeSingle
	for _, id := range slices.Sorted(slices.Values(c.confState.GetLearners())) {
		if pr, ok := st.Progress[id]; ok && pr.IsLearner && c.commit > 0 && pr.Match >= c.commit {
			changes = append(changes, single(raftpb.ConfChangeType_ConfChangeAddNode, uint32(id-1)))
		}
	}
	if len(changes) == 0 {
		return false
	}
	c.log.Info("promoting learners to voters (joint consensus)", "replicas", promotedIndices(changes))
	c.proposeConf(enterJoint(changes))
	return true
}

func promotedIndices(changes []*raftpb.ConfChangeSingle) []uint32 {
	out := make([]uint32, len(changes))
	for i, ch := range changes {
		out[i] = uint32(ch.GetNodeId() - 1)
	}
	return out
}

// refusal says why the configuration change request req must not execute
// at its entry, "" when it may (or req is nil). It depends only on raft's
// configuration at the entry, the same on every replica; the request is
// not executed (so not in the client's window), and a retransmission is
// checked again.
func (c *Core) refusal(req *wire.Request) string {
	if req == nil {
		return ""
	}
	if c.Joint() {
		// etcd raft's leader never appends one here; this keeps raft and
		// the executor in step should one commit anyway.
		return "a change of the voters is in progress (joint configuration): send this again once it is complete"
	}
	sc, err := membership.DecodeSignedChange(req.GetConfigChange())
	if err != nil {
		return ""
	}
	ch, err := membership.DecodeChange(sc.Change)
	if err != nil || ch.Kind != membership.RemoveReplica {
		return ""
	}
	voters := c.confState.GetVoters()
	if len(voters) == 1 && voters[0] == RaftID(ch.Member.Index) && len(c.confState.GetLearners()) > 0 {
		return fmt.Sprintf("replica %d is the only voter; the new members are still catching up (learners): send this again once they vote", ch.Member.Index)
	}
	return ""
}

// OutgoingMembers returns, while raft's configuration is joint, the
// members of the configuration before the change that entered it that
// the change removed but that still vote in C_old (VotersOutgoing): the
// runtime keeps them in its transport until the leave is applied, as the
// outgoing majority counts them. Nil when not joint.
func (c *Core) OutgoingMembers() []membership.Member {
	if !c.Joint() {
		return nil
	}
	m := c.exec.Membership()
	var out []membership.Member
	for _, mem := range m.Previous.Members {
		if m.Current.Position(mem.Index) < 0 && slices.Contains(c.confState.GetVotersOutgoing(), RaftID(mem.Index)) {
			out = append(out, mem)
		}
	}
	return out
}
