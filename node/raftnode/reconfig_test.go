package raftnode_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	pbftnode "github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node/raftnode"
)

const waitLimit = 60 * time.Second

// waitUntil polls cond until it holds, failing the test after waitLimit.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	localnettest.WaitFor(t, what, waitLimit, cond)
}

// agree reports whether the listed replicas report the same epoch,
// members, executed sequence and state digest, with members as given.
func agree(nodes map[int]*raftnode.Node, epoch uint64, members []uint32, indices ...int) bool {
	first := nodes[indices[0]].Status()
	for _, i := range indices {
		st := nodes[i].Status()
		if st.Epoch != epoch || !slices.Equal(st.Members, members) || st.ExecutedSequence != first.ExecutedSequence || st.StateDigest != first.StateDigest {
			return false
		}
	}
	return true
}

// A spare joins a running Raft cluster once added (learning the
// configuration, receiving the state, voting), and a removed member's
// departure leaves the rest serving.
func TestSpareJoinsAndRemovedMemberLeaves(t *testing.T) {
	dir := t.TempDir()
	nodes, cfgs := startCluster(t, dir, config.Testnet{Replicas: 3, Spares: 1, Consensus: config.ConsensusRaft, UnsafeNoFsync: true, RaftSnapshotInterval: 16})
	adminKey, err := keyfile.Read(filepath.Join(dir, config.AdminKeyFile(0)))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := pbftnode.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	put := func(k, v string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if _, err := cl.Invoke(ctx, execution.EncodePut([]byte(k), []byte(v))); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	for i := range 40 {
		put(fmt.Sprintf("k%d", i), "v")
	}
	localnettest.MustChangeConfig(t, cl, adminKey, membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: cfgs[3].Self}, waitLimit)
	put("after", "add")
	waitUntil(t, "all four to agree on epoch 1", func() bool { return agree(nodes, 1, []uint32{0, 1, 2, 3}, 0, 1, 2, 3) })

	// Remove the leader: it hands leadership over before it goes.
	var victim int
	waitUntil(t, "a leader", func() bool { victim = nodes[0].Status().Leader; return victim >= 0 })
	rest := slices.DeleteFunc([]int{0, 1, 2, 3}, func(i int) bool { return i == victim })
	restIdx := make([]uint32, len(rest))
	for i, r := range rest {
		restIdx[i] = uint32(r)
	}
	localnettest.MustChangeConfig(t, cl, adminKey, membership.Change{Epoch: 1, Kind: membership.RemoveReplica, Member: membership.Member{Index: uint32(victim)}}, waitLimit)
	waitUntil(t, "the other three to agree on epoch 2", func() bool { return agree(nodes, 2, restIdx, rest...) })
	waitUntil(t, "a new leader", func() bool { l := nodes[rest[0]].Status().Leader; return l >= 0 && l != victim })
	_ = nodes[victim].Close()
	put("after", "remove")
	// With one more down, the other two are a majority of the three.
	_ = nodes[rest[len(rest)-1]].Close()
	put("with", "two")
	waitUntil(t, "the last two to agree", func() bool { return agree(nodes, 2, restIdx, rest[:2]...) })
}

// A follower removed while cut off from the others never hears of it from
// raft; it notices the silence, asks the members, and reports that it is
// no longer a member.
func TestFollowerRemovedWhileCutOffLearnsIt(t *testing.T) {
	dir := t.TempDir()
	nodes, cfgs := startCluster(t, dir, config.Testnet{Replicas: 3, Consensus: config.ConsensusRaft, UnsafeNoFsync: true})
	start := func(i int) { nodes[i], cfgs[i] = startReplica(t, dir, i) }
	var leader int
	waitUntil(t, "a leader", func() bool { leader = nodes[0].Status().Leader; return leader >= 0 })
	victim := (leader + 1) % 3
	// The victim is down while it is removed, so it cannot apply its
	// removal; it comes back to a cluster that no longer admits it.
	_ = nodes[victim].Close()
	adminKey, err := keyfile.Read(filepath.Join(dir, config.AdminKeyFile(0)))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := pbftnode.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	localnettest.MustChangeConfig(t, cl, adminKey, membership.Change{Epoch: 0, Kind: membership.RemoveReplica, Member: membership.Member{Index: uint32(victim)}}, waitLimit)
	start(victim)
	waitUntil(t, "the removed follower to report epoch 1 without itself", func() bool {
		st := nodes[victim].Status()
		return st.Epoch == 1 && !slices.Contains(st.Members, uint32(victim))
	})
}
