package raftmode

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A replica that lost its data (its disk replaced, its data directory
// wiped) restarts with an empty log while the leader still records it as
// holding entries up to some match index. etcd raft then deadlocks: the
// follower's rejections look stale to the leader (they are below the
// match index), and a heartbeat's commit index, which raft bounds by the
// match index, lies beyond the follower's log, which etcd raft treats as
// a fatal inconsistency (it panics). etcd itself requires removing and
// re-adding such a member; with membership fixed by the cluster file, the
// Core recovers instead:
//
//   - the follower clamps a heartbeat's commit index to its last index
//     (checkHeartbeatCommit) and tells the leader where its log really
//     ends, with a rejection raft ignores as stale but the leader's Core
//     reads (dataLossReport);
//   - the leader's Core, seeing a rejection hint below the match index it
//     holds for that follower, hands leadership to another up-to-date
//     replica (handOver): a new leader starts with fresh progress, probes
//     the follower, and sends it a snapshot.
//
// Raft's safety argument assumes stable storage: a replica that lost its
// data also forgot its vote, and could vote twice in a term it voted in
// before the loss. Operators should treat a wiped Raft replica as a disk
// failure (docs/operations.md).

// checkHeartbeatCommit clamps m's commit index to this replica's log and,
// when it had to, reports the data loss to the leader.
func (c *Core) checkHeartbeatCommit(m *raftpb.Message) {
	last, err := c.cfg.Log.LastIndex()
	if err != nil || m.GetCommit() <= last {
		return
	}
	c.log.Warn("leader believes this replica holds entries it does not have (data lost?); asking it to resend",
		"leader", m.GetFrom()-1, "commit", m.GetCommit(), "last_index", last)
	m.Commit = proto.Uint64(last)
	c.extra = append(c.extra, &raftpb.Message{
		Type: raftpb.MessageType_MsgAppResp.Enum(), To: proto.Uint64(m.GetFrom()), From: proto.Uint64(RaftID(c.cfg.Index)),
		Term: proto.Uint64(m.GetTerm()), Index: proto.Uint64(m.GetCommit()), Reject: proto.Bool(true),
		RejectHint: proto.Uint64(last),
	})
}

// checkFollowerDataLoss hands leadership over when replica from rejects
// an append with a hint below the match index the leader holds for it.
func (c *Core) checkFollowerDataLoss(from uint32, m *raftpb.Message) {
	if c.transferTicks > 0 {
		return
	}
	st := c.rn.Status()
	pr, ok := st.Progress[RaftID(from)]
	if !ok || m.GetRejectHint() >= pr.Match {
		return
	}
	var to uint64
	for id, p := range st.Progress {
		if id == RaftID(c.cfg.Index) || id == RaftID(from) {
			continue
		}
		if to == 0 || p.Match > st.Progress[to].Match || (p.Match == st.Progress[to].Match && id < to) {
			to = id
		}
	}
	if to == 0 {
		c.log.Warn("follower lost its data, and no other replica can take over leadership", "follower", from)
		return
	}
	c.log.Warn("follower lost its data; handing leadership over so that a fresh leader resends it everything",
		"follower", from, "its_last_index", m.GetRejectHint(), "match", pr.Match, "to", to-1)
	c.rn.TransferLeader(to)
	c.transferTicks = 1
}

// tickHandOver abandons a leadership hand-over that did not complete
// within an election timeout (raft's own abort uses the election timeout
// the Core turned off).
func (c *Core) tickHandOver() {
	if c.transferTicks == 0 {
		return
	}
	if c.rn.BasicStatus().LeadTransferee == raft.None {
		c.transferTicks = 0
		return
	}
	if c.transferTicks++; c.transferTicks > c.cfg.ElectionTicks {
		c.log.Warn("leadership hand-over timed out; staying leader")
		c.rn.TransferLeader(RaftID(c.cfg.Index)) // aborts the transfer
		c.transferTicks = 0
	}
}
