package main

// Multi-process checks: the pbftnode binary is built once, a testnet is
// written with `pbftnode testnet`, and four `pbftnode run` processes form
// the cluster. Load comes from the Go client library. A replica is killed
// with SIGKILL (and, in the second test, loses its data directory), the
// others keep committing, and the restarted replica must catch up.
//
// Both tests are skipped under -short.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/proctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveBinary()
	os.Exit(code)
}

// pbftnodeBinary builds the command once per test binary and returns its
// path (proctest.Binary).
func pbftnodeBinary(t *testing.T) string { return proctest.Binary(t) }

const procReplicas = 4

// procCluster is a testnet run as separate `pbftnode run` processes
// (proctest.Cluster), with this package's names for its operations.
type procCluster struct {
	*proctest.Cluster
	t   *testing.T
	dir string
	// n replicas run the cluster's protocol ("pbft" or "raft").
	n int
}

// startProcCluster writes a testnet with the binary and starts its four
// replicas as processes; it returns once every replica serves /metrics.
func startProcCluster(t *testing.T) *procCluster {
	t.Helper()
	return startProcClusterOf(t, config.ConsensusPBFT, procReplicas)
}

// startProcClusterOf is startProcCluster for n replicas of protocol,
// with extra testnet flags.
func startProcClusterOf(t *testing.T, protocol string, n int, testnetArgs ...string) *procCluster {
	t.Helper()
	pc := proctest.Start(t, proctest.Options{Protocol: protocol, Replicas: n, TestnetArgs: testnetArgs})
	return &procCluster{Cluster: pc, t: t, dir: pc.Dir, n: pc.N}
}

func (c *procCluster) home(i int) string    { return c.Home(i) }
func (c *procCluster) logPath(i int) string { return c.LogPath(i) }

// start starts replica i's process; its output is appended to node<i>.log.
func (c *procCluster) start(i int) error { return c.StartReplica(i) }

// kill sends SIGKILL to replica i and waits for the process to end.
func (c *procCluster) kill(i int) { c.Kill(i) }

// waitServing polls replica i's /metrics until it answers, failing early
// if the process exits.
func (c *procCluster) waitServing(i int, timeout time.Duration) error {
	return c.WaitServing(i, timeout)
}

// metric scrapes replica i's /metrics and returns the value of the
// unlabelled metric name.
func (c *procCluster) metric(i int, name string) (float64, error) { return c.Metric(i, name) }

// mustMetric is metric, failing the test on error.
func (c *procCluster) mustMetric(i int, name string) float64 {
	c.t.Helper()
	v, err := c.metric(i, name)
	if err != nil {
		c.t.Fatalf("scrape %s from replica %d: %v", name, i, err)
	}
	return v
}

// readerClient is a client with a fresh key (a second client under
// client.key would share its peer ID and steal its replies) that accepts
// a result only once every replica sent the same one: a read through it
// compares all four replicas' states for that key.
func (c *procCluster) readerClient() *client.Client { return c.Client(c.n) }

// procKey and procValue name the keys the load writes.
func procKey(i int) []byte   { return []byte(fmt.Sprintf("k%06d", i)) }
func procValue(i int) []byte { return []byte(fmt.Sprintf("v%d", i)) }

// putRange puts keys [from, to) from workers goroutines sharing cl and
// fails the test if any put does not succeed.
func putRange(t *testing.T, cl *client.Client, from, to, workers int) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var next atomic.Int64
	next.Store(int64(from))
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				raw, err := cl.Invoke(ctx, execution.EncodePut(procKey(i), procValue(i)))
				if err != nil {
					fail(fmt.Errorf("put %s: %w", procKey(i), err))
					return
				}
				res, err := execution.DecodeResult(raw)
				if err != nil || !res.Ok || res.Error != "" {
					fail(fmt.Errorf("put %s: result %+v, decode error %v", procKey(i), res, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("load on keys [%d, %d): %v", from, to, firstErr)
	}
	d := time.Since(start)
	t.Logf("put keys [%d, %d) with %d workers in %v (%.0f ops/s)", from, to, workers, d.Round(time.Millisecond), float64(to-from)/d.Seconds())
	return d
}

// waitCaughtUp waits until replica i executed at least what replica ref
// executed (the load has stopped, so ref's sequence is final), and
// returns how long that took.
func (c *procCluster) waitCaughtUp(i, ref int, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var got, want float64
	var err error
	for {
		want = c.mustMetric(ref, "pbftnode_executed_sequence")
		got, err = c.metric(i, "pbftnode_executed_sequence")
		if err == nil && got >= want {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replica %d did not catch up within %v: executed sequence %v (scrape error %v), replica %d's %v",
				i, timeout, got, err, ref, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitAllEqual waits until every replica reports the same executed
// sequence and returns it.
func (c *procCluster) waitAllEqual(timeout time.Duration) float64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var seqs []float64
		for i := range c.n {
			seqs = append(seqs, c.mustMetric(i, "pbftnode_executed_sequence"))
		}
		same := true
		for _, s := range seqs[1:] {
			same = same && s == seqs[0]
		}
		if same {
			return seqs[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replicas' executed sequences did not become equal within %v: %v", timeout, seqs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSample reads back sample keys through a client that needs all
// four replicas to return the same value, so a replica whose state
// diverged (or that cannot execute) fails the read.
func (c *procCluster) checkSample(rc *client.Client, keys []int) {
	c.t.Helper()
	c.checkSampleWith(rc, keys)
}

// checkSampleWith reads sample keys back through rc and fails the test
// unless each holds the value the load wrote.
func (c *procCluster) checkSampleWith(rc *client.Client, keys []int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, k := range keys {
		raw, err := rc.Invoke(ctx, execution.EncodeGet(procKey(k)))
		if err != nil {
			c.t.Fatalf("get %s with all %d replicas required to agree: %v", procKey(k), procReplicas, err)
		}
		res, err := execution.DecodeResult(raw)
		if err != nil {
			c.t.Fatalf("get %s: %v", procKey(k), err)
		}
		if !res.Ok || string(res.Value) != string(procValue(k)) {
			c.t.Fatalf("get %s = %q (found %v), want %q", procKey(k), res.Value, res.Ok, procValue(k))
		}
	}
}

// sampleKeys picks n distinct keys in [0, limit) from rng, plus both ends.
func sampleKeys(rng *rand.Rand, limit, n int) []int {
	keys := []int{0, limit - 1}
	for _, k := range rng.Perm(limit)[:n] {
		keys = append(keys, k)
	}
	return keys
}

const (
	procOpsPerPhase = 2000
	procWorkers     = 16
	procCatchUp     = 30 * time.Second
)

// runKillRestart is the body of both tests: load, SIGKILL replica victim,
// more load, optionally wipe its data directory, restart it, and check it
// catches up and holds the same state.
func runKillRestart(t *testing.T, victim int, wipe bool) *procCluster {
	c := startProcCluster(t)
	load, err := openClient(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = load.Close() })

	putRange(t, load, 0, procOpsPerPhase, procWorkers)
	c.kill(victim)
	before := c.mustMetric(0, "pbftnode_executed_sequence")
	putRange(t, load, procOpsPerPhase, 2*procOpsPerPhase, procWorkers)
	after := c.mustMetric(0, "pbftnode_executed_sequence")
	if stable := c.mustMetric(0, "pbftnode_stable_checkpoint"); stable == 0 {
		t.Fatalf("no stable checkpoint on replica 0 after %v sequences", after)
	}
	t.Logf("replica %d missed sequences %v..%v", victim, before, after)

	if wipe {
		data := filepath.Join(c.home(victim), "data")
		if _, err := os.Stat(data); err != nil {
			t.Fatalf("replica %d's data directory: %v", victim, err)
		}
		if err := os.RemoveAll(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.start(victim); err != nil {
		t.Fatal(err)
	}
	took := c.waitCaughtUp(victim, 0, procCatchUp)
	t.Logf("replica %d (wiped data: %v) caught up with replica 0 in %v", victim, wipe, took.Round(time.Millisecond))

	c.waitAllEqual(10 * time.Second)
	if stable := c.mustMetric(victim, "pbftnode_stable_checkpoint"); stable <= 0 {
		t.Fatalf("restarted replica %d has no stable checkpoint (%v)", victim, stable)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(victim)))
	// Keys from both phases: the second phase's were written while the
	// replica was down.
	c.checkSample(c.readerClient(), sampleKeys(rng, 2*procOpsPerPhase, 40))
	return c
}

func TestProcessKilledReplicaCatchesUp(t *testing.T) {
	runKillRestart(t, 3, false)
}

func TestProcessWipedReplicaCatchesUpByStateTransfer(t *testing.T) {
	c := runKillRestart(t, 2, true)
	if got := c.mustMetric(2, "pbftnode_state_transfers_total"); got < 1 {
		t.Fatalf("replica 2 restarted without its data reports %v state transfers, want at least 1", got)
	}
}
