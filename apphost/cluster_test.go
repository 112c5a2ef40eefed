package apphost

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/raftmode"
)

// TestClusterRunsHostedApplications runs four replicas of each mode whose
// application is a hosted testApp: they agree; a replica whose application
// restarts empty is brought back; a replica whose disk and application are
// wiped catches up (state transfer of the host's records).
func TestClusterRunsHostedApplications(t *testing.T) {
	for _, consensus := range []string{config.ConsensusPBFT, config.ConsensusRaft} {
		t.Run(consensus, func(t *testing.T) { runHostedCluster(t, consensus) })
	}
}

func runHostedCluster(t *testing.T, consensus string) {
	apps := make([]*testApp, 4)
	for i := range apps {
		apps[i] = newTestApp()
	}
	net := localnettest.Start(t, localnet.Options{
		Consensus: consensus,
		Protocol:  protocol.Config{CheckpointInterval: 8},
		Raft:      raftmode.Config{SnapshotInterval: 8},
		Application: func(i int) execution.Opener {
			return Opener(apps[i], Options{SnapshotEvery: 5, RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond})
		},
	})
	c, err := net.NewClient(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	put := func(from, to int) {
		t.Helper()
		for n := from; n < to; n++ {
			res, err := c.Invoke(ctx, fmt.Appendf(nil, "k%d=v%d", n%5, n))
			if err != nil || !strings.HasPrefix(string(res), "old:") {
				t.Fatalf("put %d: %q, %v", n, res, err)
			}
		}
	}
	put(0, 20)
	waitAgreed(t, net, apps)

	apps[2].restart()
	put(20, 30)
	waitAgreed(t, net, apps)
	if m, ok := net.Replica(2).(interface{ MetricValue(string) float64 }); ok {
		if got := m.MetricValue("pbftnode_application_restores_total"); got < 1 {
			t.Fatalf("pbftnode_application_restores_total = %v on the replica whose application restarted, want >= 1", got)
		}
		if got := m.MetricValue("pbftnode_application_available"); got != 1 {
			t.Fatalf("pbftnode_application_available = %v after the restore, want 1", got)
		}
	}

	if err := net.StopReplica(3); err != nil {
		t.Fatal(err)
	}
	if err := net.WipeReplica(3); err != nil {
		t.Fatal(err)
	}
	apps[3].restart()
	put(30, 70)
	if err := net.StartReplica(3); err != nil {
		t.Fatal(err)
	}
	put(70, 75)
	waitAgreed(t, net, apps)
}

// waitAgreed waits until the four replicas executed the same sequence
// with the same state digest and their applications hold the same state,
// then checks no operation was applied twice. The statuses and the
// applications are read one after the other while the cluster runs (a late
// leader change appends an empty entry in the Raft mode), so a mismatch is
// retried until the deadline: a real divergence never heals.
func waitAgreed(t *testing.T, net *localnet.Net, apps []*testApp) {
	t.Helper()
	var want testState
	agreed := func() error {
		first := net.Replica(0).Status()
		for i := 1; i < len(apps); i++ {
			st := net.Replica(i).Status()
			if st.ExecutedSequence != first.ExecutedSequence || st.StateDigest != first.StateDigest {
				return fmt.Errorf("replica %d executed %d (digest %x), replica 0 %d (digest %x)",
					i, st.ExecutedSequence, st.StateDigest, first.ExecutedSequence, first.StateDigest)
			}
		}
		want = apps[0].state()
		for i, a := range apps[1:] {
			if got := a.state(); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("application of replica %d differs from replica 0's:\n got %+v\nwant %+v", i+1, got, want)
			}
		}
		return nil
	}
	deadline := time.Now().Add(testDeadline)
	for err := agreed(); err != nil; err = agreed() {
		if time.Now().After(deadline) {
			for i, a := range apps {
				t.Logf("replica %d: %+v; application at %d", i, net.Replica(i).Status(), a.state().Sequence)
			}
			t.Fatalf("replicas did not converge: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	seen := map[string]bool{}
	for _, id := range want.Applied {
		if seen[id] {
			t.Fatalf("operation %s applied twice", id)
		}
		seen[id] = true
	}
}
