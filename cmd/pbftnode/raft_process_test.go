package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/node"
)

// status fetches replica i's /status.
func (c *procCluster) status(i int) (node.StatusReport, error) { return c.Status(i) }

// raftLeader waits until a running replica other than not names a
// leader other than not, and returns it.
func (c *procCluster) raftLeader(not int, timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for i := range c.n {
			if i == not {
				continue
			}
			if st, err := c.status(i); err == nil && st.Leader >= 0 && st.Leader != not {
				return st.Leader
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no Raft leader (other than %d) within %v", not, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcessRaftLeaderKilledUnderLoadAndWipedReplicaRejoins is issue
// 6's process check: a 3-process Raft testnet; SIGKILL the leader while
// clients write, a new leader takes over and every write is acknowledged;
// the killed replica comes back with an empty data directory and catches
// up from a snapshot; every acknowledged write is still there and all
// replicas hold the same state.
func TestProcessRaftLeaderKilledUnderLoadAndWipedReplicaRejoins(t *testing.T) {
	c := startProcClusterOf(t, config.ConsensusRaft, 3, "--raft-snapshot-interval", "32")
	load, err := openClient(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = load.Close() })
	putRange(t, load, 0, 1000, procWorkers)

	victim := c.raftLeader(-1, 10*time.Second)
	termBefore := c.mustMetric(victim, "pbftnode_view")
	var wg sync.WaitGroup
	var loadTook time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		loadTook = putRange(t, load, 1000, 10000, procWorkers) // fails the test if any put fails
	}()
	time.Sleep(150 * time.Millisecond)
	killed := time.Now()
	c.kill(victim)
	leader := c.raftLeader(victim, 15*time.Second)
	t.Logf("killed leader %d; replica %d leads after %v", victim, leader, time.Since(killed).Round(time.Millisecond))
	wg.Wait()
	if t.Failed() {
		return
	}
	if loadTook < 150*time.Millisecond {
		t.Fatalf("the load ended (%v) before the leader was killed: not a crash under load", loadTook)
	}
	if term := c.mustMetric(leader, "pbftnode_view"); term <= termBefore {
		t.Fatalf("term %v after the leader's crash, %v before: no election", term, termBefore)
	}

	data := filepath.Join(c.home(victim), "data")
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := c.start(victim); err != nil {
		t.Fatal(err)
	}
	if err := c.waitServing(victim, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	took := c.waitCaughtUp(victim, leader, procCatchUp)
	t.Logf("replica %d (data wiped) caught up in %v", victim, took.Round(time.Millisecond))
	if got := c.mustMetric(victim, "pbftnode_state_transfers_total"); got < 1 {
		t.Fatalf("wiped replica caught up without a snapshot transfer (state transfers %v)", got)
	}
	c.waitAllEqual(10 * time.Second)
	var digests []string
	for i := range c.n {
		st, err := c.status(i)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, st.StateDigest)
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Fatalf("replicas hold different states at the same index: %v", digests)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	c.checkSampleWith(load, sampleKeys(rng, 10000, 60))
}
