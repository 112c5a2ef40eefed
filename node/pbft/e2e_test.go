package pbft_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// startNet starts a local cluster for the test (localnettest.Start).
func startNet(t *testing.T, opts localnet.Options) *localnet.Net {
	t.Helper()
	return localnettest.Start(t, opts)
}

// invoke runs one operation and decodes its key-value result.
func invoke(ctx context.Context, t *testing.T, c *client.Client, op []byte) *wire.KVResult {
	t.Helper()
	raw, err := c.Invoke(ctx, op)
	if err != nil {
		t.Errorf("invoke: %v", err)
		return &wire.KVResult{}
	}
	res, err := execution.DecodeResult(raw)
	if err != nil {
		t.Errorf("decode result: %v", err)
		return &wire.KVResult{}
	}
	return res
}

// runWorkload runs clients x workers goroutines, each doing ops sequential
// operations on a key of its own, and checks every result against the
// key-value model.
func runWorkload(t *testing.T, net *localnet.Net, clients, workers, rounds int) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var done atomic.Int64
	var wg sync.WaitGroup
	for ci := range clients {
		c, err := net.NewClient(300 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := []byte(fmt.Sprintf("c%d-w%d", ci, w))
				for r := range rounds / 4 {
					v := []byte(fmt.Sprint(r))
					next := []byte(fmt.Sprint(r + 1))
					if res := invoke(ctx, t, c, execution.EncodePut(key, v)); !res.Ok {
						t.Errorf("put %s: %+v", key, res)
						return
					}
					if res := invoke(ctx, t, c, execution.EncodeGet(key)); !res.Ok || string(res.Value) != string(v) {
						t.Errorf("get %s = %q (found %v), want %q", key, res.Value, res.Ok, v)
						return
					}
					if res := invoke(ctx, t, c, execution.EncodeCAS(key, v, false, next)); !res.Ok {
						t.Errorf("cas %s %s->%s failed: %+v", key, v, next, res)
						return
					}
					if res := invoke(ctx, t, c, execution.EncodeCAS(key, v, false, next)); res.Ok || string(res.Value) != string(next) {
						t.Errorf("stale cas %s succeeded or saw %q, want current %q", key, res.Value, next)
						return
					}
					done.Add(4)
				}
			}()
		}
	}
	wg.Wait()
	return done.Load()
}

// waitConverged waits until the running replicas executed the same
// sequence, then checks they hold the same state digest.
func waitConverged(t *testing.T, net *localnet.Net) node.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sts []node.Status
		for _, n := range net.Nodes {
			if n != nil {
				sts = append(sts, n.Status())
			}
		}
		if sameExecuted(t, sts, "replicas") {
			return sts[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge: %+v", sts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameExecuted reports whether every status has executed up to the same
// sequence; if they have, it fails the test unless they also hold the same
// state digest (who names the replicas in the message).
func sameExecuted(t *testing.T, sts []node.Status, who string) bool {
	t.Helper()
	for _, st := range sts[1:] {
		if st.ExecutedSequence != sts[0].ExecutedSequence {
			return false
		}
	}
	for _, st := range sts[1:] {
		if st.StateDigest != sts[0].StateDigest {
			t.Fatalf("%s %d and %d executed up to %d but hold different state digests", who, sts[0].Index, st.Index, st.ExecutedSequence)
		}
	}
	return true
}

func TestThousandConcurrentOperationsAgree(t *testing.T) {
	net := startNet(t, localnet.Options{Protocol: protocol.Config{CheckpointInterval: 16}})
	if n := runWorkload(t, net, 5, 10, 20); n != 1000 {
		t.Fatalf("%d operations completed, want 1000", n)
	}
	st := waitConverged(t, net)
	if st.StableCheckpoint == 0 {
		t.Fatalf("no checkpoint became stable after %d sequences", st.ExecutedSequence)
	}
	// The operator metrics moved with the load.
	for _, name := range []string{
		"pbftnode_committed_requests_total", "pbftnode_phase_seconds", "pbftnode_signatures_verified_total",
		"pbftnode_message_bytes_sent_total", "pbftnode_message_bytes_received_total", "pbftnode_p2p_frames_sent_total",
		"pbftnode_checkpoints_stable_total",
	} {
		if v := net.Nodes[1].MetricValue(name); v <= 0 {
			t.Errorf("metric %s is %v after 1,000 operations", name, v)
		}
	}
	if v := net.Nodes[1].MetricValue("pbftnode_signatures_rejected_total"); v != 0 {
		t.Errorf("%v signatures rejected in a cluster of correct replicas", v)
	}
}

func TestOneBackupStoppedOthersCommit(t *testing.T) {
	net := startNet(t, localnet.Options{})
	if err := net.StopReplica(3); err != nil {
		t.Fatal(err)
	}
	if n := runWorkload(t, net, 2, 4, 20); n != 160 {
		t.Fatalf("%d operations completed with a backup stopped, want 160", n)
	}
	waitConverged(t, net)
}

// wrongResults is a Byzantine filter that corrupts every reply.
type wrongResults struct{ corrupted atomic.Int64 }

func (w *wrongResults) Outbound(out protocol.Outbound) []protocol.Outbound {
	return []protocol.Outbound{out}
}

func (w *wrongResults) Reply(r *wire.Reply) bool {
	r.Result = append([]byte("forged:"), r.Result...)
	w.corrupted.Add(1)
	return true
}

func TestClientsAcceptOnlyCorrectResults(t *testing.T) {
	liar := &wrongResults{}
	net := startNet(t, localnet.Options{Filters: map[int]pbft.Filter{1: liar}})
	if n := runWorkload(t, net, 2, 4, 20); n != 160 {
		t.Fatalf("%d operations completed, want 160", n)
	}
	if liar.corrupted.Load() == 0 {
		t.Fatal("the Byzantine replica sent no forged reply; the test proved nothing")
	}
	waitConverged(t, net)
}

// TestLatePreparesGoUnchecked: over libp2p, PREPAREs that reach a
// replica after it prepared their sequence are dropped before their
// signature check (the primary needs two of the three, a backup one of
// the other two), and the replicas still agree.
func TestLatePreparesGoUnchecked(t *testing.T) {
	net := startNet(t, localnet.Options{Metrics: true})
	if n := runWorkload(t, net, 1, 1, 32); n != 32 {
		t.Fatalf("%d operations completed, want 32", n)
	}
	waitConverged(t, net)
	late := func() float64 {
		total := 0.0
		for _, nd := range net.Nodes {
			total += nd.MetricValueWith("pbftnode_prechecked_dropped_total", "reason", "already_prepared")
		}
		return total
	}
	waitUntil(t, net, 10*time.Second, "late PREPAREs dropped unchecked", func() bool { return late() > 0 })
}

// Every replica counts the COMMITs of the others on the word of their
// authenticated sessions (no signature check), unless CheckDirectCommits
// is set; either way the cluster agrees.
func TestCommitsGoByChannelUnlessChecked(t *testing.T) {
	for _, check := range []bool{false, true} {
		net := startNet(t, localnet.Options{Metrics: true, CheckDirectCommits: check})
		if n := runWorkload(t, net, 1, 2, 8); n != 16 {
			t.Fatalf("check %v: %d operations completed, want 16", check, n)
		}
		// The status waitConverged saw was published with the gauge, after
		// every COMMIT that executed its batches was counted.
		waitConverged(t, net)
		for i := range net.Nodes {
			byChannel := func() float64 { return net.Nodes[i].MetricValue("pbftnode_commits_by_channel") }
			if check {
				if v := byChannel(); v != 0 {
					t.Fatalf("replica %d counted %v COMMITs by channel with CheckDirectCommits", i, v)
				}
				continue
			}
			waitUntil(t, net, 10*time.Second, "COMMITs counted by channel", func() bool { return byChannel() > 0 })
		}
		if err := net.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTentativeRepliesOverLibp2p: a client that accepts tentative replies
// (the default) gets most of its writes accepted on 2f+1 tentative replies
// of one view and sequence, which the replicas sent before the batches
// committed, and every result is the key-value model's; a client with
// CommittedRepliesOnly gets none, and no replica executes tentatively for
// it. Either way the replicas agree.
func TestTentativeRepliesOverLibp2p(t *testing.T) {
	for _, committedOnly := range []bool{false, true} {
		net := startNet(t, localnet.Options{Metrics: true})
		c, err := net.NewClientWithConfig(client.Config{RetransmitTimeout: 300 * time.Millisecond, CommittedRepliesOnly: committedOnly})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		const ops = 24
		for i := range ops {
			key := []byte(fmt.Sprint("k", i%4))
			if res := invoke(ctx, t, c, execution.EncodePut(key, []byte(fmt.Sprint(i)))); !res.Ok {
				t.Fatalf("put %d: %+v", i, res)
			}
			if res := invoke(ctx, t, c, execution.EncodeCAS(key, []byte(fmt.Sprint(i)), false, []byte("x"))); !res.Ok {
				t.Fatalf("cas after put %d failed: %+v", i, res)
			}
		}
		cancel()
		waitConverged(t, net)
		executed := 0.0
		for _, nd := range net.Nodes {
			executed += nd.MetricValueWith("pbftnode_tentative_batches_total", "outcome", "executed")
		}
		accepted := c.TentativeAccepts()
		if committedOnly {
			if accepted != 0 || executed != 0 {
				t.Fatalf("CommittedRepliesOnly: %d calls accepted on tentative replies, %v batches executed tentatively", accepted, executed)
			}
		} else if accepted < ops || executed < ops {
			t.Fatalf("%d of %d calls accepted on tentative replies, %v batches executed tentatively", accepted, 2*ops, executed)
		}
		t.Logf("committed only %v: %d of %d calls accepted on tentative replies; %v tentative executions", committedOnly, accepted, 2*ops, executed)
		_ = c.Close()
		if err := net.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
