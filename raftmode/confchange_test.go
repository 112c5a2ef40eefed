package raftmode_test

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

const confCluster = "raftconf-test"

var adminClient = []byte("admin-0123456789abcdef0123456789ab")

func testMember(t *testing.T, i int) membership.Member {
	return membership.Member{Index: uint32(i), PublicKey: cryptotest.Key(t, int64(i+1)).Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 9000+i)}
}

// newMemberCluster starts n members and spares spare replicas (indices n
// to n+spares-1) under membership rules; it returns the cluster and the
// administrator's key.
func newMemberCluster(t *testing.T, n, spares int, interval uint64) (*cluster, ed25519.PrivateKey) {
	admin := cryptotest.Key(t, 99)
	g := membership.Config{Admins: []ed25519.PublicKey{admin.Public().(ed25519.PublicKey)}, AdminThreshold: 1}
	for i := range n {
		g.Members = append(g.Members, testMember(t, i))
	}
	c := &cluster{t: t, down: map[int]bool{}, cut: map[int]bool{}, replies: map[string][]byte{}, reads: map[string]*wire.Reply{}, interval: interval, n: n,
		rules: &execution.MembershipRules{ClusterID: confCluster, Genesis: g, Rules: membership.Rules{MinMembers: 1}, ActiveFrom: func(s uint64) uint64 { return s + 1 }},
		spare: map[int]bool{}}
	for i := range n + spares {
		c.spare[i] = i >= n
		c.add(i)
	}
	return c, admin
}

func signedChange(t *testing.T, admin ed25519.PrivateKey, ch membership.Change) []byte {
	t.Helper()
	sc := membership.SignedChange{Change: ch.Encode()}
	sc.Signatures = append(sc.Signatures, membership.Sign(confCluster, sc.Change, admin))
	return sc.Encode()
}

func (c *cluster) submitChange(to int, number uint64, change []byte) {
	c.t.Helper()
	if err := c.drivers[to].Submit(&wire.Request{ClientId: adminClient, RequestNumber: number, ConfigChange: change}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) changeResult(number uint64) (string, bool) {
	r, ok := c.replies[fmt.Sprintf("%x/%d", adminClient, number)]
	return string(r), ok
}

// membersConverged: the listed replicas applied the same index, hold the
// same state digest and agree on the configuration, raft's included,
// which is not joint.
func (c *cluster) membersConverged(members ...int) bool {
	first := c.cores[members[0]]
	if first.Joint() {
		return false
	}
	for _, i := range members[1:] {
		core := c.cores[i]
		if core.Status().Applied != first.Status().Applied || core.Executor().StateDigest() != first.Executor().StateDigest() ||
			!proto.Equal(core.ConfState(), first.ConfState()) || core.Epoch() != first.Epoch() {
			return false
		}
	}
	return true
}

func isVoter(core *raftmode.Core, index uint32) bool {
	return slices.Contains(core.ConfState().GetVoters(), raftmode.RaftID(index))
}

func isLearner(core *raftmode.Core, index uint32) bool {
	return slices.Contains(core.ConfState().GetLearners(), raftmode.RaftID(index))
}

func TestAddedReplicaJoinsAsLearnerThenVotes(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 1, 1000)
	c.runUntil(300, func() bool { return c.leader() >= 0 })
	for n := uint64(1); n <= 20; n++ {
		c.submit(c.leader(), n, execution.EncodePut(fmt.Appendf(nil, "k%d", n), []byte("v")))
	}
	c.runUntil(300, func() bool { return c.replied(20) })
	add := membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)}
	c.submitChange(c.leader(), 1, signedChange(t, admin, add))
	sawLearner := false
	c.runUntil(500, func() bool {
		l := c.leader()
		sawLearner = sawLearner || (l >= 0 && isLearner(c.cores[l], 3))
		return l >= 0 && isVoter(c.cores[l], 3)
	})
	if res, ok := c.changeResult(1); !ok || !strings.HasPrefix(res, execution.ConfigChangeAccepted) {
		t.Fatalf("add-replica result %q (replied %v)", res, ok)
	}
	if !sawLearner {
		t.Fatal("replica 3 became a voter without being a learner first")
	}
	c.submit(c.leader(), 21, execution.EncodePut([]byte("after"), []byte("join")))
	c.runUntil(500, func() bool { return c.replied(21) && c.membersConverged(0, 1, 2, 3) })
	if got := c.cores[3].Membership(); got.Epoch != 1 || len(got.Members) != 4 {
		t.Fatalf("the new replica's configuration: epoch %d, %d members", got.Epoch, len(got.Members))
	}
	// The new voter counts: with two of the old members down, the other
	// old one and the new one are not a quorum of 4, and with one down
	// they are.
	c.down[0] = true
	c.submit(c.leader2(), 22, execution.EncodePut([]byte("with"), []byte("three")))
	c.runUntil(1000, func() bool { return c.replied(22) })
}

// leader2 is the leader among the running replicas, after running rounds
// until there is one.
func (c *cluster) leader2() int {
	c.t.Helper()
	c.runUntil(1000, func() bool { return c.leader() >= 0 })
	return c.leader()
}

func TestRemovedLeaderHandsOverAndTheRestGoOn(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 0, 1000)
	l := c.leader2()
	// The first MsgTimeoutNow of the hand-over is lost: the removed
	// leader must send it again.
	lost := false
	c.drop = func(m *raftpb.Message) bool {
		if m.GetType() == raftpb.MessageType_MsgTimeoutNow && !lost {
			lost = true
			return true
		}
		return false
	}
	c.submitChange(l, 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.RemoveReplica, Member: membership.Member{Index: uint32(l)}}))
	c.runUntil(1000, func() bool {
		nl := c.leader()
		return nl >= 0 && nl != l && !slices.Contains(c.cores[nl].ConfState().GetVoters(), raftmode.RaftID(uint32(l)))
	})
	if res, ok := c.changeResult(1); !ok || !strings.HasPrefix(res, execution.ConfigChangeAccepted) {
		t.Fatalf("remove-replica result %q (replied %v)", res, ok)
	}
	if !lost {
		t.Fatal("no MsgTimeoutNow was sent")
	}
	c.runUntil(300, func() bool { return c.cores[l].Removed() })
	if st := c.cores[l].Status(); !st.Removed || st.Epoch != 1 {
		t.Fatalf("removed replica's status %+v", st)
	}
	rest := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == l })
	c.submit(c.leader(), 1, execution.EncodePut([]byte("k"), []byte("v")))
	c.runUntil(500, func() bool { return c.replied(1) && c.membersConverged(rest...) })
	// Two members: both are needed now, and the removed one is not.
	c.down[l] = true
	c.submit(c.leader2(), 2, execution.EncodePut([]byte("k"), []byte("w")))
	c.runUntil(500, func() bool { return c.replied(2) })
}

func TestRefusedChangeAppliesNothingAndIsAnsweredOnce(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 1, 1000)
	l := c.leader2()
	// A valid change, through the leader and a follower at once.
	add := signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)})
	c.submitChange(l, 1, add)
	c.submitChange((l+1)%3, 1, add)
	c.runUntil(1000, func() bool { return isVoter(c.cores[c.leader2()], 3) && c.membersConverged(0, 1, 2, 3) })
	first, _ := c.changeResult(1)
	if !strings.HasPrefix(first, execution.ConfigChangeAccepted) {
		t.Fatalf("add-replica: %q", first)
	}
	// The same request again (a retransmission) is answered from the
	// reply cache and changes nothing more.
	delete(c.replies, fmt.Sprintf("%x/%d", adminClient, 1))
	c.submitChange(c.leader(), 1, add)
	c.runUntil(200, func() bool { _, ok := c.changeResult(1); return ok })
	if again, _ := c.changeResult(1); again != first {
		t.Fatalf("retransmission answered %q, first answer %q", again, first)
	}
	want := proto.Clone(c.cores[c.leader()].ConfState())
	applied := c.cores[c.leader()].Status().Applied
	// Signed for the wrong epoch, and signed by a stranger: ordered, then
	// refused when applied, with no raft change.
	c.submitChange(c.leader(), 2, signedChange(t, admin, membership.Change{Epoch: 5, Kind: membership.RemoveReplica, Member: membership.Member{Index: 3}}))
	c.submitChange(c.leader(), 3, signedChange(t, cryptotest.Key(t, 1234), membership.Change{Epoch: 1, Kind: membership.RemoveReplica, Member: membership.Member{Index: 3}}))
	c.runUntil(500, func() bool {
		_, ok1 := c.changeResult(2)
		_, ok2 := c.changeResult(3)
		return ok1 && ok2 && c.membersConverged(0, 1, 2, 3)
	})
	for n := uint64(2); n <= 3; n++ {
		if res, _ := c.changeResult(n); !strings.HasPrefix(res, execution.ConfigChangeRefused) {
			t.Fatalf("change %d: result %q, want refused", n, res)
		}
	}
	core := c.cores[c.leader()]
	if core.Epoch() != 1 || !proto.Equal(core.ConfState(), want) || core.Status().Applied < applied+2 {
		t.Fatalf("after refused changes: epoch %d, conf state %v (want %v), applied %d (was %d)", core.Epoch(), core.ConfState(), want, core.Status().Applied, applied)
	}
}

func TestRestartKeepsTheConfiguration(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 2, 1000)
	l := c.leader2()
	c.submitChange(l, 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)}))
	c.runUntil(1000, func() bool { return isVoter(c.cores[c.leader2()], 3) })
	c.submitChange(c.leader(), 2, signedChange(t, admin, membership.Change{Epoch: 1, Kind: membership.RemoveReplica, Member: membership.Member{Index: 1}}))
	c.runUntil(1000, func() bool { _, ok := c.changeResult(2); return ok && c.membersConverged(0, 2, 3) })
	c.submit(c.leader2(), 1, execution.EncodePut([]byte("k"), []byte("v")))
	c.runUntil(500, func() bool { return c.replied(1) && c.membersConverged(0, 2, 3) })
	want := c.cores[3].ConfState()
	for _, i := range []int{0, 2, 3} {
		c.start(i) // from what its database holds
		if got := c.cores[i].ConfState(); !proto.Equal(got, want) || c.cores[i].Epoch() != 2 {
			t.Fatalf("replica %d after restart: conf state %v epoch %d, want %v epoch 2", i, got, c.cores[i].Epoch(), want)
		}
	}
	c.down[1] = true
	c.submit(c.leader2(), 2, execution.EncodePut([]byte("k"), []byte("w")))
	c.runUntil(1000, func() bool { return c.replied(2) && c.membersConverged(0, 2, 3) })
	c.submitChange(c.leader(), 3, signedChange(t, admin, membership.Change{Epoch: 2, Kind: membership.AddReplica, Member: testMember(t, 4)}))
	c.runUntil(1000, func() bool { _, ok := c.changeResult(3); return ok && c.membersConverged(0, 2, 3) })
	for _, i := range []int{0, 2, 3} {
		c.start(i)
		if !isLearner(c.cores[i], 4) && !isVoter(c.cores[i], 4) {
			t.Fatalf("replica %d lost replica 4 at restart: %v", i, c.cores[i].ConfState())
		}
	}
	c.runUntil(1000, func() bool { return isVoter(c.cores[c.leader2()], 4) && c.membersConverged(0, 2, 3, 4) })
}

// lostSnapshots is a raft log whose snapshots are never recorded, as if
// the replica crashed each time between executing an entry and recording
// the snapshot after it.
type lostSnapshots struct{ *raftlog.Log }

func (l lostSnapshots) CreateSnapshot(uint64, *raftpb.ConfState, []byte) (*raftpb.Snapshot, error) {
	return &raftpb.Snapshot{}, nil
}

// Compact does nothing: the log is compacted only below a recorded
// snapshot.
func (l lostSnapshots) Compact(uint64) error { return nil }

// Configuration changes executed before a crash whose snapshots were not
// recorded are applied to raft again at restart: the latest from the
// executor's record, an earlier one from the reply cached for it.
func TestRestartReplaysAChangeWhoseSnapshotWasLost(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 2, 1000)
	l := c.leader2()
	f := (l + 1) % 3
	c.wrapLog = func(i int, log *raftlog.Log) raftmode.LogStorage {
		if i == f {
			return lostSnapshots{log}
		}
		return log
	}
	c.start(f)
	c.wrapLog = nil
	c.submitChange(c.leader2(), 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: testMember(t, 3)}))
	c.runUntil(1000, func() bool { return isVoter(c.cores[c.leader2()], 3) && c.membersConverged(0, 1, 2, 3) })
	// A second change: the first is no longer the executor's latest.
	c.submitChange(c.leader2(), 2, signedChange(t, admin, membership.Change{Epoch: 1, Kind: membership.AddReplica, Member: testMember(t, 4)}))
	c.runUntil(1000, func() bool { return isVoter(c.cores[c.leader2()], 4) && c.membersConverged(0, 1, 2, 3, 4) })
	if snap, _ := c.logs[f].Snapshot(); snap.GetMetadata().GetIndex() > 1 {
		t.Fatalf("replica %d recorded a snapshot at %d", f, snap.GetMetadata().GetIndex())
	}
	want := proto.Clone(c.cores[c.leader()].ConfState())
	c.start(f)
	c.runUntil(300, func() bool { return proto.Equal(c.cores[f].ConfState(), want) })
	c.submit(c.leader2(), 1, execution.EncodePut([]byte("k"), []byte("v")))
	c.runUntil(500, func() bool { return c.replied(1) && c.membersConverged(0, 1, 2, 3, 4) })
}

// A key rotation moves the configuration to a new epoch without changing
// raft's: the member keeps its raft ID and its vote.
func TestRotatedKeyChangesNoRaftMembership(t *testing.T) {
	c, admin := newMemberCluster(t, 3, 0, 1000)
	l := c.leader2()
	before := proto.Clone(c.cores[l].ConfState())
	fresh := cryptotest.Key(t, 555).Public().(ed25519.PublicKey)
	c.submitChange(l, 1, signedChange(t, admin, membership.Change{Epoch: 0, Kind: membership.RotateKey, Member: membership.Member{Index: 1, PublicKey: fresh}}))
	c.runUntil(500, func() bool { _, ok := c.changeResult(1); return ok && c.membersConverged(0, 1, 2) })
	if res, _ := c.changeResult(1); !strings.HasPrefix(res, execution.ConfigChangeAccepted) {
		t.Fatalf("rotate-key: %q", res)
	}
	core := c.cores[c.leader()]
	if m, _ := core.Membership().Member(1); core.Epoch() != 1 || !m.PublicKey.Equal(fresh) || !proto.Equal(core.ConfState(), before) {
		t.Fatalf("after rotation: epoch %d, key %x, conf state %v (was %v)", core.Epoch(), m.PublicKey, core.ConfState(), before)
	}
}
