package main

// Multi-process checks: the pbftnode binary is built once, a testnet is
// written with `pbftnode testnet`, and four `pbftnode run` processes form
// the cluster. Load comes from the Go client library. A replica is killed
// with SIGKILL (and, in the second test, loses its data directory), the
// others keep committing, and the restarted replica must catch up.
//
// Both tests are skipped under -short.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
)

// procBinary is the pbftnode binary built for this test run (see
// pbftnodeBinary); TestMain removes its directory.
var procBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if procBinary.dir != "" {
		_ = os.RemoveAll(procBinary.dir)
	}
	os.Exit(code)
}

// pbftnodeBinary builds the command (the test runs in cmd/pbftnode) once
// per test binary and returns its path.
func pbftnodeBinary(t *testing.T) string {
	t.Helper()
	procBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "pbftnode-bin-")
		if err != nil {
			procBinary.err = err
			return
		}
		procBinary.dir = dir
		path := filepath.Join(dir, "pbftnode")
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			procBinary.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		procBinary.path = path
		t.Logf("built %s in %v", path, time.Since(start).Round(time.Millisecond))
	})
	if procBinary.err != nil {
		t.Fatalf("building the pbftnode binary: %v", procBinary.err)
	}
	return procBinary.path
}

const procReplicas = 4

// procCluster is a testnet run as separate `pbftnode run` processes.
type procCluster struct {
	t    *testing.T
	bin  string
	dir  string
	base int
	http *http.Client
	// n replicas run protocol ("pbft" or "raft"); at most procReplicas.
	n        int
	protocol string

	mu    sync.Mutex
	procs [procReplicas]*replicaProc
}

// replicaProc is one running replica process.
type replicaProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's result, valid after exited
}

// startProcCluster writes a testnet with the binary and starts its four
// replicas as processes, retrying with other ports if one could not
// listen (another process can take a port between the check and the
// bind). It returns once every replica serves /metrics and the cluster
// commits an operation.
func startProcCluster(t *testing.T) *procCluster {
	t.Helper()
	return startProcClusterOf(t, config.ConsensusPBFT, procReplicas)
}

// startProcClusterOf is startProcCluster for n replicas of protocol,
// with extra testnet flags.
func startProcClusterOf(t *testing.T, protocol string, n int, testnetArgs ...string) *procCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs a multi-process cluster")
	}
	bin := pbftnodeBinary(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	var lastErr error
	for attempt := range 3 {
		base := 0
		for range 50 {
			p := 31000 + rng.IntN(8000-100-procReplicas)
			var ports []int
			for i := range procReplicas {
				ports = append(ports, p+i, p+100+i)
			}
			if portsFree(ports...) {
				base = p
				break
			}
		}
		if base == 0 {
			t.Fatal("no free block of ports in 31000-39000")
		}
		c := &procCluster{
			t: t, bin: bin, base: base,
			dir:  filepath.Join(t.TempDir(), fmt.Sprintf("testnet%d", attempt)),
			http: &http.Client{Timeout: 2 * time.Second},
			n:    n, protocol: protocol,
		}
		args := append([]string{"testnet", "--protocol", protocol, "--replicas", strconv.Itoa(n),
			"--dir", c.dir, "--base-port", strconv.Itoa(base)}, testnetArgs...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("pbftnode testnet: %v\n%s", err, out)
		}
		t.Cleanup(c.stopAll)
		if lastErr = c.startAll(); lastErr == nil {
			t.Cleanup(func() {
				if t.Failed() {
					c.dumpLogs()
				}
			})
			return c
		}
		t.Logf("attempt %d (base port %d): %v", attempt, base, lastErr)
		c.stopAll()
	}
	t.Fatalf("could not start the multi-process testnet: %v", lastErr)
	return nil
}

func (c *procCluster) home(i int) string { return filepath.Join(c.dir, fmt.Sprintf("node%d", i)) }
func (c *procCluster) logPath(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("node%d.log", i))
}

// start starts replica i's process; its stdout and stderr are appended to
// node<i>.log.
func (c *procCluster) start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.procs[i] != nil {
		return fmt.Errorf("replica %d is already running", i)
	}
	p, err := startReplicaProcess(c.logPath(i), fmt.Sprintf("replica %d", i), c.bin, "run", "--home", c.home(i), "--unsafe-no-fsync")
	if err != nil {
		return fmt.Errorf("start replica %d: %w", i, err)
	}
	c.procs[i] = p
	return nil
}

// kill sends SIGKILL to replica i and waits for the process to end.
func (c *procCluster) kill(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	killReplicaProcess(c.t, i, p)
}

// startReplicaProcess starts argv with its stdout and stderr appended to
// logPath (after a banner naming what), and reaps it in the background.
func startReplicaProcess(logPath, what, name string, args ...string) (*replicaProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== test: starting %s at %s\n", what, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &replicaProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// killReplicaProcess sends SIGKILL to p (nil: nothing) and waits for it.
func killReplicaProcess(t *testing.T, i int, p *replicaProc) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("replica %d (pid %d) did not exit 10 s after SIGKILL", i, p.cmd.Process.Pid)
	}
}

func (c *procCluster) stopAll() {
	for i := range c.n {
		c.kill(i)
	}
}

// startAll starts every replica and waits until each serves /metrics.
func (c *procCluster) startAll() error {
	for i := range c.n {
		if err := c.start(i); err != nil {
			return err
		}
	}
	for i := range c.n {
		if err := c.waitServing(i, 15*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// waitServing polls replica i's /metrics until it answers, failing early
// if the process exits.
func (c *procCluster) waitServing(i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		p := c.procs[i]
		c.mu.Unlock()
		if p == nil {
			return fmt.Errorf("replica %d is not running", i)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("replica %d exited (%v); log tail:\n%s", i, p.err, tail(c.logPath(i), 10))
		default:
		}
		if _, err := c.metric(i, "pbftnode_executed_sequence"); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("replica %d does not serve /metrics after %v: %w", i, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric scrapes replica i's /metrics and returns the value of the
// unlabelled metric name.
func (c *procCluster) metric(i int, name string) (float64, error) {
	resp, err := c.http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.base+100+i))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("replica %d /metrics: %s", i, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == name {
			return strconv.ParseFloat(fields[1], 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("replica %d exports no metric %s", i, name)
}

// mustMetric is metric, failing the test on error.
func (c *procCluster) mustMetric(i int, name string) float64 {
	c.t.Helper()
	v, err := c.metric(i, name)
	if err != nil {
		c.t.Fatalf("scrape %s from replica %d: %v", name, i, err)
	}
	return v
}

// dumpLogs prints the tail of every replica's log.
func (c *procCluster) dumpLogs() {
	for i := range c.n {
		c.t.Logf("--- tail of replica %d's log (%s):\n%s", i, c.logPath(i), tail(c.logPath(i), 25))
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readerClient is a client with a fresh key (a second client under
// client.key would share its peer ID and steal its replies) that accepts
// a result only once every replica sent the same one: a read through it
// compares all four replicas' states for that key.
func (c *procCluster) readerClient() *client.Client {
	c.t.Helper()
	var cf config.ClientFile
	if err := config.ReadJSON(filepath.Join(c.dir, "client.json"), &cf); err != nil {
		c.t.Fatal(err)
	}
	replicas, err := cf.Decode()
	if err != nil {
		c.t.Fatal(err)
	}
	members := make([]p2p.Member, len(replicas))
	for i, r := range replicas {
		if members[i], err = node.Member(r); err != nil {
			c.t.Fatal(err)
		}
	}
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	rc, err := client.New(client.Config{
		ClusterID: cf.ClusterID, Key: key, Replicas: members,
		ReplyQuorum: len(members), RetransmitTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = rc.Close() })
	return rc
}

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
