package pbft_test

// End-to-end tests of the tick-driven Byzantine strategies (floods and
// slow-primary) on 4 in-process replicas: the node drives the filter's
// Injector and Delayer hooks. Each flood starts inactive (as with run
// --byzantine-toggle), must inject nothing while off, then, switched on,
// must show on the victims' /metrics, and the correct replicas must
// complete a client load and agree on the executed sequence and state.

import (
	"context"
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/opstest"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/pbft"
)

// startStrategy starts 4 replicas with metrics, of which replica liar
// runs strategy with opts.
func startStrategy(t *testing.T, strategy string, liar int, opts byzantine.Options) (*localnet.Net, *byzantine.Filter) {
	t.Helper()
	var filter *byzantine.Filter
	var ferr error
	net := startNet(t, localnet.Options{
		Metrics: true,
		FilterFactory: func(i int, key ed25519.PrivateKey, cluster string) pbft.Filter {
			if i != liar {
				return nil
			}
			filter, ferr = byzantine.NewWithOptions(strategy, uint32(i), 4, key, cluster, opts)
			return filter
		},
	})
	if ferr != nil || filter == nil {
		t.Fatalf("byzantine.NewWithOptions(%q): %v", strategy, ferr)
	}
	return net, filter
}

// seriesSum adds up every series on addr's /metrics whose line starts
// with one of prefixes (a name with "{" covers all its labels).
func seriesSum(t *testing.T, addr string, prefixes ...string) float64 {
	t.Helper()
	body := opstest.MetricsText(t, addr)
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		for _, p := range prefixes {
			if !strings.HasPrefix(line, p) {
				continue
			}
			if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// victimsEvidence returns each victim's (every replica but liar) sum of
// the evidence series.
func victimsEvidence(t *testing.T, net *localnet.Net, liar int, evidence []string) map[int]float64 {
	t.Helper()
	got := map[int]float64{}
	for i := range net.Nodes {
		if i != liar {
			got[i] = seriesSum(t, net.Replica(i).MetricsAddr(), evidence...)
		}
	}
	return got
}

// floodTest runs strategy on replica 3 (a backup), switched off for a
// warm-up load, then on: every victim's evidence series must grow by at
// least perVictim, a client load must complete and the correct replicas
// converge. Evidence counts drops of any reason, so that whichever stage
// drops the flood (verification, a per-peer budget, a back-off), it shows.
func floodTest(t *testing.T, strategy string, perVictim float64, evidence ...string) {
	const liar = 3
	net, filter := startStrategy(t, strategy, liar, byzantine.Options{Inactive: true})
	if n := runWorkload(t, net, 1, 2, 8); n != 16 {
		t.Fatalf("%d warm-up operations completed, want 16", n)
	}
	if a := filter.Actions(); a != 0 {
		t.Fatalf("inactive %s injected %d frames", strategy, a)
	}
	before := victimsEvidence(t, net, liar, evidence)
	if !filter.SetActive(true) {
		t.Fatal("SetActive(true) changed nothing")
	}
	started := time.Now()
	grown := func() map[int]float64 {
		now := victimsEvidence(t, net, liar, evidence)
		for i := range now {
			now[i] -= before[i]
		}
		return now
	}
	waitUntil(t, net, 20*time.Second, "every victim shows the flood", func() bool {
		for _, g := range grown() {
			if g < perVictim {
				return false
			}
		}
		return filter.Actions() >= 100
	})
	t.Logf("%s: victims' evidence %v after %s (%d frames injected)", strategy, grown(), time.Since(started).Round(time.Millisecond), filter.Actions())
	if n := runWorkload(t, net, byzClients, byzWorkers, 12); n != byzClients*byzWorkers*12 {
		t.Fatalf("%d operations completed under %s, want %d", n, strategy, byzClients*byzWorkers*12)
	}
	filter.SetActive(false)
	t.Logf("%s: load done %s after the flood started; %d frames injected, victims' evidence %v",
		strategy, time.Since(started).Round(time.Millisecond), filter.Actions(), grown())
	if st := waitConvergedExcept(t, net, liar); st.ExecutedSequence == 0 {
		t.Fatal("correct replicas converged on an empty log")
	}
}

// Frames with bad signatures are rejected by the victims' verification.
func TestByzantineBadSignatureFlood(t *testing.T) {
	floodTest(t, byzantine.StrategyBadSignatureFlood, 1, "pbftnode_signatures_rejected_total ", "pbftnode_messages_dropped_total{")
}

// Properly signed stale-view and out-of-window messages are dropped.
func TestByzantineStaleFlood(t *testing.T) {
	floodTest(t, byzantine.StrategyStaleFlood, 20, "pbftnode_messages_dropped_total{")
}

// BATCH-REQUESTs for real batches make the victims send batches back.
func TestByzantineBatchRequestFlood(t *testing.T) {
	floodTest(t, byzantine.StrategyBatchRequestFlood, 5, `pbftnode_messages_sent_total{type="batch_reply"}`)
}

// The primary of view 0 holds each PRE-PREPARE for 90 ticks (900 ms):
// an operation takes at least that long unless the backups replaced it.
func TestByzantineSlowPrimary(t *testing.T) {
	const liar = 0
	net, filter := startStrategy(t, byzantine.StrategySlowPrimary, liar, byzantine.Options{})
	c, err := net.NewClient(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	took := timedProbe(ctx, t, c, "slow-primary-probe", time.Now())
	if filter.Actions() == 0 {
		t.Fatal("the slow primary delayed no PRE-PREPARE")
	}
	hold := time.Duration(byzantine.DefaultDelayTicks) * node.DefaultTickInterval
	if v := net.Nodes[1].Status().View; v == 0 && took < hold*8/10 {
		t.Fatalf("an operation took %s in view 0 with a primary holding PRE-PREPAREs %s", took, hold)
	}
	t.Logf("slow-primary: first operation took %s; view %d", took.Round(time.Millisecond), net.Nodes[1].Status().View)
	if n := runWorkload(t, net, 1, 4, 4); n != 16 {
		t.Fatalf("%d operations completed with a slow primary, want 16", n)
	}
	if st := waitConvergedExcept(t, net, liar); st.ExecutedSequence == 0 {
		t.Fatal("correct replicas converged on an empty log")
	}
	t.Logf("slow-primary: %d PRE-PREPAREs delayed; view %d", filter.Actions(), net.Nodes[1].Status().View)
}
