package robustness

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveBinary()
	os.Exit(code)
}

const (
	defaultDuration = 30 * time.Second
	workers         = 4
	keys            = 5
	// opTimeout is how long a client waits for an operation before
	// recording it as pending; long enough to ride out a restart of the
	// whole cluster on a busy machine. One worker gives up after
	// impatientTimeout instead, so that outages leave operations whose
	// outcome is unknown (they may still take effect) in the history.
	opTimeout        = 20 * time.Second
	impatientTimeout = 1500 * time.Millisecond
	// healLoad is how long the load runs on the healed cluster before it
	// stops; convergeTimeout bounds the idle cluster's convergence.
	healLoad        = 3 * time.Second
	convergeTimeout = 30 * time.Second
)

// settings are the run's duration, seed and Byzantine strategy, from the
// environment (PBFTNODE_ROBUSTNESS, PBFTNODE_ROBUSTNESS_SEED,
// PBFTNODE_ROBUSTNESS_STRATEGY) or the defaults.
func settings(t *testing.T) (time.Duration, uint64, string) {
	d := defaultDuration
	if s := os.Getenv("PBFTNODE_ROBUSTNESS"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			t.Fatalf("PBFTNODE_ROBUSTNESS=%q: want a positive duration such as 5m", s)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PBFTNODE_ROBUSTNESS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PBFTNODE_ROBUSTNESS_SEED=%q: %v", s, err)
		}
	}
	strategy := os.Getenv("PBFTNODE_ROBUSTNESS_STRATEGY")
	if strategy != "" && !slices.Contains(nemesisStrategies, strategy) {
		t.Fatalf("PBFTNODE_ROBUSTNESS_STRATEGY=%q: want one of %v", strategy, nemesisStrategies)
	}
	return d, seed, strategy
}

// TestRobustness runs the nemesis against a 4-process testnet under
// concurrent load, then checks that the faults happened, that every
// replica converges once they stop, and that the whole client history
// (with a final read of every key that all four replicas must agree on)
// is linearizable.
func TestRobustness(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a multi-process testnet under faults for 30 s or more")
	}
	d, seed, strategy := settings(t)
	rng := seededRand(seed, 0)
	byz := rng.IntN(4)
	if strategy == "" {
		strategy = nemesisStrategies[rng.IntN(len(nemesisStrategies))]
	}
	t.Logf("seed %d (PBFTNODE_ROBUSTNESS_SEED replays the schedule), nemesis for %v, replica %d Byzantine with %s", seed, d, byz, strategy)

	replicaArgs := map[int][]string{byz: {"--byzantine", strategy, "--byzantine-toggle", "--byzantine-rate", "200"}}
	plantSetting(t, replicaArgs, (byz+1)%4)
	c := proctest.Start(t, proctest.Options{
		// Small checkpoints and windows, so that faults cross several
		// checkpoints and a lagging replica needs state transfer.
		RunArgs:     []string{"--checkpoint-interval", "16", "--window-size", "32"},
		ReplicaArgs: replicaArgs,
	})
	h := newHistory()
	clients := make([]*client.Client, workers)
	for i := range clients {
		clients[i] = c.Client(0)
	}
	timeouts := make([]time.Duration, workers)
	for i := range timeouts {
		timeouts[i] = opTimeout
	}
	timeouts[0] = impatientTimeout
	load := startWorkload(h, clients, keys, timeouts, seed)
	defer load.halt(0)
	waitCompleted(t, load, 20, 60*time.Second)

	nem := &nemesis{t: t, c: c, rng: rng, byz: byz, strategy: strategy}
	nem.run(d)
	if t.Failed() {
		return
	}
	beforeHeal := load.completed.Load()
	time.Sleep(healLoad) // the load runs on the healed cluster for a while
	waitCompleted(t, load, beforeHeal+1, 60*time.Second)
	load.halt(opTimeout + 10*time.Second)

	seq, took := waitConverged(t, c, convergeTimeout)
	t.Logf("all %d replicas at executed sequence %d, same state digest, %v after the load stopped", c.N, seq, took.Round(time.Millisecond))
	finalReads(t, c, h)

	t.Logf("nemesis: %d SIGKILLs (%d of the whole cluster), %d restarts, %d Byzantine phases of %s on replica %d with %v faults injected",
		nem.kills, nem.killAlls, nem.restarts, nem.byzPhases, strategy, byz, nem.byzActions)
	reportMetrics(t, c)
	if nem.kills == 0 || nem.killAlls == 0 || nem.restarts == 0 {
		t.Errorf("the nemesis did not kill and restart replicas: %d kills, %d whole-cluster kills, %d restarts", nem.kills, nem.killAlls, nem.restarts)
	}
	if nem.byzActions == 0 {
		t.Errorf("Byzantine replica %d (%s) injected no faults in %d phases", byz, strategy, nem.byzPhases)
	}

	ops := h.operations()
	t.Logf("history: %d operations, %d completed, %d pending (%d refused)", len(ops), len(ops)-h.pending, h.pending, h.refused)
	plantFromEnv(t, ops)
	checkLinearizable(t, ops, c.Dir)
}

// seededRand is a random source for stream of the run's seed (ChaCha8,
// so that close seeds, e.g. successive clock readings, draw unrelated
// numbers).
func seededRand(seed, stream uint64) *rand.Rand {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	binary.LittleEndian.PutUint64(key[8:16], stream)
	return rand.New(rand.NewChaCha8(key))
}

// waitCompleted waits until the workload completed at least n operations.
func waitCompleted(t *testing.T, load *workload, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for load.completed.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster completed %d operations, not %d, within %v", load.completed.Load(), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finalReads reads every key through a client that needs all four
// replicas to send the same result, and adds the reads to the history:
// the converged state must be the one the history leads to.
func finalReads(t *testing.T, c *proctest.Cluster, h *history) {
	t.Helper()
	all := c.Client(c.N)
	for k := range keys {
		in := kvmodel.Input{Kind: 'g', Key: fmt.Sprintf("rk%d", k)}
		if _, ok := invoke(context.Background(), h, all, -1, in, execution.EncodeGet([]byte(in.Key)), opTimeout); !ok {
			t.Fatalf("final read of %s: no result that all %d replicas agree on within %v", in.Key, c.N, opTimeout)
		}
	}
}

// reportMetrics logs what the replicas counted: view changes, state
// transfers, checkpoints.
func reportMetrics(t *testing.T, c *proctest.Cluster) {
	for i := range c.N {
		var vals []string
		for _, m := range []string{"pbftnode_view", "pbftnode_view_changes_total", "pbftnode_state_transfers_total", "pbftnode_stable_checkpoint"} {
			v, err := c.Metric(i, m)
			if err != nil {
				vals = append(vals, fmt.Sprintf("%s=?", m))
				continue
			}
			vals = append(vals, fmt.Sprintf("%s=%v", m, v))
		}
		t.Logf("replica %d (since its last start): %v", i, vals)
	}
}
