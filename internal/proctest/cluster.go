package proctest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/node"
)

// Options describes a testnet.
type Options struct {
	// Protocol is config.ConsensusPBFT (default) or config.ConsensusRaft.
	Protocol string
	// Replicas is n (default 4).
	Replicas int
	// TestnetArgs are extra `pbftnode testnet` flags.
	TestnetArgs []string
	// RunArgs are extra `pbftnode run` flags for every replica (after
	// --home and --unsafe-no-fsync).
	RunArgs []string
	// ReplicaArgs are extra `pbftnode run` flags for replica i, at every
	// start (after RunArgs).
	ReplicaArgs map[int][]string
	// StartTimeout bounds how long each replica may take to serve
	// /metrics at the first start (default 30 s).
	StartTimeout time.Duration
}

// Cluster is a testnet whose replicas run as `pbftnode run` processes.
// Replica i listens on 127.0.0.1:Base+i and serves its operations
// endpoints on Base+100+i. Safe for concurrent use.
type Cluster struct {
	t    testing.TB
	Bin  string
	Dir  string
	Base int
	N    int
	opts Options
	http *http.Client

	procs *Procs
}

// firstPort and portRange bound the blocks of ports Start picks from:
// below Linux's default ephemeral range (32768-60999), so that the
// outgoing connections of a busy machine cannot take the port of a killed
// replica before it restarts ("address already in use"), and clear of
// the testnet default (26600).
const (
	firstPort = 10000
	portRange = 16000
)

// Start builds the binary (see Binary), writes a testnet on a free block
// of ports and starts every replica, retrying with other ports (another
// process can take a port between the check and the bind). It returns
// once every replica serves /metrics. Cleanup kills the replicas and, if
// the test failed, logs the tail of each replica's log. It skips the test
// under -short.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs a multi-process cluster")
	}
	if opts.Protocol == "" {
		opts.Protocol = config.ConsensusPBFT
	}
	if opts.Replicas == 0 {
		opts.Replicas = 4
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	bin := Binary(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	var lastErr error
	for attempt := range 3 {
		base := freeBase(rng, opts.Replicas)
		if base == 0 {
			t.Fatalf("no free block of ports in %d-%d", firstPort, firstPort+portRange)
		}
		c := &Cluster{
			t: t, Bin: bin, Base: base, N: opts.Replicas, opts: opts,
			Dir:   filepath.Join(t.TempDir(), fmt.Sprintf("testnet%d", attempt)),
			http:  &http.Client{Timeout: 5 * time.Second},
			procs: NewProcs(opts.Replicas),
		}
		args := append([]string{"testnet", "--protocol", opts.Protocol, "--replicas", strconv.Itoa(opts.Replicas),
			"--dir", c.Dir, "--base-port", strconv.Itoa(base)}, opts.TestnetArgs...)
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("pbftnode testnet: %v\n%s", err, out)
		}
		t.Cleanup(c.StopAll)
		if lastErr = c.startAll(); lastErr == nil {
			t.Cleanup(func() {
				if t.Failed() {
					c.DumpLogs(40)
				}
			})
			return c
		}
		t.Logf("attempt %d (base port %d): %v", attempt, base, lastErr)
		c.StopAll()
	}
	t.Fatalf("could not start the multi-process testnet: %v", lastErr)
	return nil
}

// freeBase finds P such that P..P+n-1 and P+100..P+100+n-1 are free, or 0.
func freeBase(rng *rand.Rand, n int) int {
	for range 50 {
		p := firstPort + rng.IntN(portRange-100-n)
		var ports []int
		for i := range n {
			ports = append(ports, p+i, p+100+i)
		}
		if PortsFree(ports...) {
			return p
		}
	}
	return 0
}

// Home is replica i's home directory.
func (c *Cluster) Home(i int) string { return filepath.Join(c.Dir, fmt.Sprintf("node%d", i)) }

// LogPath is the file replica i's output is appended to.
func (c *Cluster) LogPath(i int) string { return filepath.Join(c.Dir, fmt.Sprintf("node%d.log", i)) }

// OpsURL is the base URL of replica i's operations endpoints.
func (c *Cluster) OpsURL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", c.Base+100+i) }

// StartReplica starts replica i's process with the cluster's RunArgs, its
// ReplicaArgs and extra flags. It does not wait for it to serve (see WaitServing).
func (c *Cluster) StartReplica(i int, extra ...string) error {
	args := append([]string{"run", "--home", c.Home(i), "--unsafe-no-fsync"}, c.opts.RunArgs...)
	args = append(args, c.opts.ReplicaArgs[i]...)
	return c.procs.Start(i, c.LogPath(i), fmt.Sprintf("replica %d", i), c.Bin, append(args, extra...)...)
}

// Kill sends SIGKILL to replica i (if running) and waits for it to end.
func (c *Cluster) Kill(i int) {
	if err := c.procs.Kill(i); err != nil {
		c.t.Error(err)
	}
}

// Signal sends sig to replica i's process.
func (c *Cluster) Signal(i int, sig syscall.Signal) error {
	p := c.procs.Get(i)
	if p == nil {
		return fmt.Errorf("proctest: replica %d is not running", i)
	}
	return p.Signal(sig)
}

// Running reports whether replica i has a process (started and not
// killed; it may have exited on its own, see WaitServing).
func (c *Cluster) Running(i int) bool {
	return c.procs.Get(i) != nil
}

// StopAll kills every replica.
func (c *Cluster) StopAll() {
	for i := range c.N {
		c.Kill(i)
	}
}

// startAll starts every replica and waits until each serves /metrics.
func (c *Cluster) startAll() error {
	for i := range c.N {
		if err := c.StartReplica(i); err != nil {
			return err
		}
	}
	for i := range c.N {
		if err := c.WaitServing(i, c.opts.StartTimeout); err != nil {
			return err
		}
	}
	return nil
}

// WaitServing polls replica i's /metrics until it answers, failing early
// if the process exits.
func (c *Cluster) WaitServing(i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		p := c.procs.Get(i)
		if p == nil {
			return fmt.Errorf("proctest: replica %d is not running", i)
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("proctest: replica %d exited (%v); log tail:\n%s", i, err, Tail(c.LogPath(i), 10))
		}
		_, err := c.Metric(i, "pbftnode_executed_sequence")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proctest: replica %d does not serve /metrics after %v: %w", i, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Metric scrapes replica i's /metrics and returns the value of series (a
// metric name, with its labels as exposed if it has any).
func (c *Cluster) Metric(i int, series string) (float64, error) {
	return ScrapeMetric(c.http, c.OpsURL(i)+"/metrics", series)
}

// ScrapeMetric fetches a /metrics exposition from url with hc and returns
// the value of series (a metric name, with its labels as exposed if it
// has any).
func ScrapeMetric(hc *http.Client, url, series string) (float64, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, fmt.Errorf("proctest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("proctest: %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("proctest: %s: %w", url, err)
	}
	return 0, fmt.Errorf("proctest: %s exports no series %s", url, series)
}

// Status fetches replica i's /status.
func (c *Cluster) Status(i int) (node.StatusReport, error) {
	var st node.StatusReport
	resp, err := c.http.Get(c.OpsURL(i) + "/status")
	if err != nil {
		return st, fmt.Errorf("proctest: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("proctest: replica %d /status: %w", i, err)
	}
	return st, nil
}

// Client returns a client of the testnet with a key of its own (two
// clients sharing a key and session would steal each other's replies)
// that accepts a result once quorum replicas sent the same one (0: the
// library's default, f+1). Cleanup closes it.
func (c *Cluster) Client(quorum int) *client.Client { return ClientOf(c.t, c.Dir, quorum) }

// ClientOf is Cluster.Client for the testnet written in dir (its
// client.json).
func ClientOf(t testing.TB, dir string, quorum int) *client.Client {
	t.Helper()
	cf, members, err := node.ReadClientFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{
		ClusterID: cf.ClusterID, Key: key, Replicas: members,
		ReplyQuorum: quorum, RetransmitTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// DumpLogs logs the last lines lines of every replica's log.
func (c *Cluster) DumpLogs(lines int) {
	for i := range c.N {
		c.t.Logf("--- tail of replica %d's log (%s):\n%s", i, c.LogPath(i), Tail(c.LogPath(i), lines))
	}
}
