package raftmode_test

import (
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/raftmode"
)

// confChangeOf decodes a ConfChangeV2 entry; ok is false for any other.
func confChangeOf(e *raftpb.Entry) (*raftpb.ConfChangeV2, bool) {
	if e.GetType() != raftpb.EntryType_EntryConfChangeV2 {
		return nil, false
	}
	cc := new(raftpb.ConfChangeV2)
	if err := proto.Unmarshal(e.GetData(), cc); err != nil {
		return nil, false
	}
	return cc, true
}

// isLeaveEntry: the empty ConfChangeV2 that leaves a joint configuration.
func isLeaveEntry(e *raftpb.Entry) bool {
	cc, ok := confChangeOf(e)
	return ok && len(cc.GetChanges()) == 0 && len(cc.GetContext()) == 0
}

// carriesLeave reports whether m appends a leave entry.
func carriesLeave(m *raftpb.Message) bool {
	return slices.ContainsFunc(m.GetEntries(), isLeaveEntry)
}

func ids(indices ...uint32) []uint64 {
	out := make([]uint64, len(indices))
	for i, x := range indices {
		out[i] = raftmode.RaftID(x)
	}
	return out
}

func sorted(s []uint64) []uint64 { return slices.Sorted(slices.Values(s)) }

// addMember has the administrator send a change (number) to the leader
// and waits until it is accepted.
func (c *cluster) addMember(change []byte, number uint64) {
	c.t.Helper()
	c.submitChange(c.leader2(), number, change)
	c.runUntil(1000, func() bool { _, ok := c.changeResult(number); return ok })
	if res, _ := c.changeResult(number); !strings.HasPrefix(res, execution.ConfigChangeAccepted) {
		c.t.Fatalf("change %d: %q", number, res)
	}
}

// Two learners that have caught up at once are promoted by one joint
// change (two changes, an explicit transition), and the leave follows.
func TestCaughtUpLearnersArePromotedInOneJointChange(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 2, 1000)
	l := c.leader2()
	entries := map[uint64]*raftpb.Entry{}
	c.onSend = func(i int, m *raftpb.Message) {
		for _, e := range m.GetEntries() {
			entries[e.GetIndex()] = e
		}
	}
	// The spares' acknowledgements are lost until both are added and have
	// caught up: the leader sees both catch up at once.
	held := true
	c.drop = func(m *raftpb.Message) bool {
		from := m.GetFrom()
		return held && (from == raftmode.RaftID(3) || from == raftmode.RaftID(4)) && m.GetType() == raftpb.MessageType_MsgAppResp && !m.GetReject()
	}
	c.addMember(signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)}), 1)
	c.addMember(signedChange(t, admin, membership.Change{Epoch: 1, Kind: membership.AddReplica, Member: testMember(t, 4)}), 2)
	c.runUntil(2000, func() bool {
		l := c.leader()
		return l >= 0 && c.cores[3].Status().Applied == c.cores[l].Status().Commit && c.cores[4].Status().Applied == c.cores[l].Status().Commit
	})
	if l := c.leader2(); !isLearner(c.cores[l], 3) || !isLearner(c.cores[l], 4) {
		t.Fatalf("before the acknowledgements: %v", c.cores[l].ConfState())
	}
	held = false
	var joint *raftpb.ConfState
	c.runUntil(2000, func() bool {
		l = c.leader()
		if l >= 0 && c.cores[l].Joint() && joint == nil {
			joint = proto.Clone(c.cores[l].ConfState()).(*raftpb.ConfState)
		}
		return l >= 0 && isVoter(c.cores[l], 3) && isVoter(c.cores[l], 4) && c.membersConverged(0, 1, 2, 3, 4)
	})
	if joint == nil || !slices.Equal(sorted(joint.GetVoters()), ids(0, 1, 2, 3, 4)) || !slices.Equal(sorted(joint.GetVotersOutgoing()), ids(0, 1, 2)) {
		t.Fatalf("joint configuration seen at the leader: %v", joint)
	}
	// The log: one promotion entry naming both learners, explicit, and
	// the leave as the next configuration entry.
	var promotion, leave uint64
	for _, idx := range slices.Sorted(func(yield func(uint64) bool) {
		for k := range entries {
			if !yield(k) {
				return
			}
		}
	}) {
		cc, ok := confChangeOf(entries[idx])
		switch {
		case !ok:
		case promotion == 0 && len(cc.GetContext()) == 0 && len(cc.GetChanges()) > 0:
			promotion = idx
			if len(cc.GetChanges()) != 2 || cc.GetTransition() != raftpb.ConfChangeTransition_ConfChangeTransitionJointExplicit {
				t.Fatalf("promotion entry %d: %v", idx, cc)
			}
		case promotion != 0 && leave == 0:
			leave = idx
			if !isLeaveEntry(entries[idx]) {
				t.Fatalf("the configuration entry %d after the promotion %d is not the leave: %v", idx, promotion, cc)
			}
		}
	}
	if promotion == 0 || leave == 0 {
		t.Fatalf("promotion entry %d, leave entry %d", promotion, leave)
	}
	for _, i := range []int{0, 1, 2, 3, 4} {
		if got := c.cores[i].ConfState(); c.cores[i].Joint() || len(got.GetVoters()) != 5 {
			t.Fatalf("replica %d ends in %v", i, got)
		}
	}
}

// A leader that crashes after entering a joint configuration but before
// its leave reaches anyone: the next leader finds the configuration joint
// and leaves it.
func TestNewLeaderLeavesAJointConfiguration(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 1, 1000)
	l := c.leader2()
	c.drop = func(m *raftpb.Message) bool { return m.GetFrom() == raftmode.RaftID(uint32(l)) && carriesLeave(m) }
	c.submitChange(l, 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)}))
	// Joint at every replica, the leave proposed but held back.
	c.runUntil(2000, func() bool {
		return c.leader() == l && c.cores[0].Joint() && c.cores[1].Joint() && c.cores[2].Joint() && c.cores[3].Joint()
	})
	for range 20 {
		c.round()
	}
	if !c.cores[l].Joint() {
		t.Fatal("the leader left the joint configuration although its leave reached no one")
	}
	c.down[l] = true
	c.runUntil(2000, func() bool {
		nl := c.leader()
		return nl >= 0 && nl != l && !c.cores[nl].Joint()
	})
	rest := slices.DeleteFunc([]int{0, 1, 2, 3}, func(i int) bool { return i == l })
	c.runUntil(1000, func() bool { return c.membersConverged(rest...) })
	c.drop = nil
	c.start(l)
	c.runUntil(1000, func() bool { return c.membersConverged(0, 1, 2, 3) })
	if !isVoter(c.cores[l], 3) {
		t.Fatalf("after the restart: %v", c.cores[l].ConfState())
	}
}

// A removal of a voter goes through a joint configuration: C_old keeps
// the removed replica among its voters until the leave.
func TestRemovalGoesThroughJoint(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 0, 1000)
	l := c.leader2()
	f := uint32((l + 1) % 3)
	c.submitChange(l, 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.RemoveReplica, Member: membership.Member{Index: f}}))
	var joint *raftpb.ConfState
	c.runUntil(1000, func() bool {
		if nl := c.leader(); nl >= 0 && c.cores[nl].Joint() && joint == nil {
			joint = proto.Clone(c.cores[nl].ConfState()).(*raftpb.ConfState)
			if got := c.cores[nl].OutgoingMembers(); len(got) != 1 || got[0].Index != f {
				t.Fatalf("outgoing members %v, want replica %d", got, f)
			}
		}
		nl := c.leader()
		return nl >= 0 && !c.cores[nl].Joint() && !slices.Contains(c.cores[nl].ConfState().GetVoters(), raftmode.RaftID(f))
	})
	if res, _ := c.changeResult(1); !strings.HasPrefix(res, execution.ConfigChangeAccepted) {
		t.Fatalf("remove-replica: %q", res)
	}
	if joint == nil || slices.Contains(joint.GetVoters(), raftmode.RaftID(f)) || !slices.Contains(joint.GetVotersOutgoing(), raftmode.RaftID(f)) {
		t.Fatalf("joint configuration seen at the leader: %v", joint)
	}
	rest := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == int(f) })
	c.submit(c.leader(), 1, execution.EncodePut([]byte("k"), []byte("v")))
	c.runUntil(500, func() bool { return c.replied(1) && c.membersConverged(rest...) })
}

// Every replica restarts while the configuration is joint: the snapshot
// taken at the entry that entered it holds the joint configuration, raft
// restarts in it, and the leader elected then leaves it.
func TestRestartInAJointConfiguration(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 1, 1000)
	c.drop = carriesLeave
	c.submitChange(c.leader2(), 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)}))
	c.runUntil(2000, func() bool {
		return c.cores[0].Joint() && c.cores[1].Joint() && c.cores[2].Joint() && c.cores[3].Joint()
	})
	want := proto.Clone(c.cores[0].ConfState()).(*raftpb.ConfState)
	for i := range 4 {
		snap, err := c.logs[i].Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if got := snap.GetMetadata().GetConfState(); !proto.Equal(got, want) {
			t.Fatalf("replica %d's snapshot at %d holds %v, want the joint %v", i, snap.GetMetadata().GetIndex(), got, want)
		}
		c.start(i)
		if !c.cores[i].Joint() || !proto.Equal(c.cores[i].ConfState(), want) {
			t.Fatalf("replica %d restarted in %v, want %v", i, c.cores[i].ConfState(), want)
		}
	}
	c.drop = nil
	c.runUntil(2000, func() bool {
		l := c.leader()
		return l >= 0 && isVoter(c.cores[l], 3) && c.membersConverged(0, 1, 2, 3)
	})
	c.submit(c.leader2(), 1, execution.EncodePut([]byte("k"), []byte("v")))
	c.runUntil(500, func() bool { return c.replied(1) && c.membersConverged(0, 1, 2, 3) })
}

// Changes submitted while the configuration is joint, to the leader and
// to a follower, wait until the leave is applied and then go: none is
// lost (etcd raft's leader drops a change proposed while joint).
func TestChangesSubmittedWhileJointWaitAndGo(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 1, 1000)
	l := c.leader2()
	f := (l + 1) % 3
	c.drop = carriesLeave
	c.submitChange(l, 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)}))
	c.runUntil(2000, func() bool { return c.cores[l].Joint() && c.cores[f].Joint() })
	fresh := cryptotest.Key(t, 777).Public().(ed25519.PublicKey)
	c.submitChange(f, 2, signedChange(t, admin, membership.Change{Epoch: 1, Kind: membership.RotateKey, Member: membership.Member{Index: 0, PublicKey: fresh}}))
	c.submitChange(l, 3, signedChange(t, admin, membership.Change{Epoch: 1, Kind: membership.RotateKey, Member: membership.Member{Index: 1, PublicKey: fresh}}))
	for range 50 {
		c.round()
	}
	if _, ok := c.changeResult(2); ok || c.cores[l].Epoch() != 1 {
		t.Fatalf("a change executed while joint: epoch %d", c.cores[l].Epoch())
	}
	c.drop = nil
	c.runUntil(2000, func() bool {
		_, ok2 := c.changeResult(2)
		_, ok3 := c.changeResult(3)
		return ok2 && ok3 && c.membersConverged(0, 1, 2, 3)
	})
	// Both were signed for epoch 1: the one ordered first is accepted,
	// the other refused for its epoch.
	r2, _ := c.changeResult(2)
	r3, _ := c.changeResult(3)
	if strings.HasPrefix(r2, execution.ConfigChangeAccepted) == strings.HasPrefix(r3, execution.ConfigChangeAccepted) {
		t.Fatalf("results %q and %q: want one accepted", r2, r3)
	}
	if got := c.cores[c.leader2()].Epoch(); got != 2 {
		t.Fatalf("epoch %d, want 2", got)
	}
}

// A proposal from the network that is empty, or holds only configuration
// entries that are not requests, is dropped at the leader (etcd raft
// panics on an empty proposal).
func TestEmptyForwardedProposalIsDropped(t *testing.T) {
	c, _ := newMemberCluster(t, 3, 0, 1000)
	l := c.leader2()
	f := uint32((l + 1) % 3)
	from, to := raftmode.RaftID(f), raftmode.RaftID(uint32(l))
	bare, _ := proto.Marshal(&raftpb.ConfChangeV2{})
	for _, m := range []*raftpb.Message{
		{Type: raftpb.MessageType_MsgProp.Enum(), From: &from, To: &to},
		{Type: raftpb.MessageType_MsgProp.Enum(), From: &from, To: &to, Entries: []*raftpb.Entry{{Type: raftpb.EntryType_EntryConfChangeV2.Enum(), Data: bare}}},
	} {
		if err := c.drivers[l].Step(f, m); err != nil {
			t.Fatal(err)
		}
		c.round()
	}
	if c.cores[l].Joint() || !c.cores[l].Status().IsLeader {
		t.Fatalf("after the proposals: %+v %v", c.cores[l].Status(), c.cores[l].ConfState())
	}
}
