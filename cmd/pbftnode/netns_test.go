package main

// A multi-host check on one machine: every replica runs in its own Linux
// network namespace, with its own IP address, joined to the others by a
// veth pair on a bridge in the root namespace, and (where the kernel has
// sch_netem) 5 ms of added delay on every replica's outgoing link. The
// client and the /metrics scrapes run in the test's own (root) namespace
// and reach the replicas over the bridge, as they would reach other hosts.
//
// It needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's ip and
// tc; it probes for them and skips with the reason when they are missing.
// It installs nothing. A kernel without netem runs the test without the
// delay and says so in the log. Skipped under -short.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/proctest"
)

const (
	// netnsPort is every replica's libp2p port; each replica has its own
	// IP address, so they can all use the same one. Metrics are on +100.
	netnsPort = 26600
	// netnsDelay is the netem delay on every replica's veth (egress).
	netnsDelay = "5ms"
)

// netnsRun runs a command (ip or tc) with a deadline and returns its
// combined output.
func netnsRun(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// netnsProbe skips the test unless this machine can create network
// namespaces, bridges and veth pairs. It reports whether tc netem works
// and, if it does not, why.
func netnsProbe(t *testing.T) (netem bool, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("creates network namespaces and runs a multi-process cluster")
	}
	if runtime.GOOS != "linux" {
		t.Skipf("network namespaces are Linux-only (GOOS=%s)", runtime.GOOS)
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs iproute2's %q on PATH (%v); the test installs nothing", tool, err)
		}
	}
	probe := fmt.Sprintf("pbftnode-probe-%d", os.Getpid())
	if out, err := netnsRun("ip", "netns", "add", probe); err != nil {
		t.Skipf("cannot create a network namespace: `ip netns add %s`: %v: %s (needs root, or CAP_SYS_ADMIN and CAP_NET_ADMIN; euid is %d)",
			probe, err, out, os.Geteuid())
	}
	defer func() {
		if out, err := netnsRun("ip", "netns", "delete", probe); err != nil {
			t.Errorf("deleting the probe namespace %s: %v: %s", probe, err, out)
		}
	}()
	// Everything else is tried inside the probe namespace, so the root
	// namespace is untouched until the probe passed.
	if out, err := netnsRun("ip", "-n", probe, "link", "add", "pbprobebr", "type", "bridge"); err != nil {
		t.Skipf("cannot create a Linux bridge (kernel without CONFIG_BRIDGE?): %v: %s", err, out)
	}
	if out, err := netnsRun("ip", "-n", probe, "link", "add", "pbprobe0", "type", "veth", "peer", "name", "pbprobe1"); err != nil {
		t.Skipf("cannot create a veth pair (kernel without CONFIG_VETH?): %v: %s", err, out)
	}
	out, err := netnsRun("ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "pbprobe0", "root", "netem", "delay", netnsDelay)
	if err != nil {
		return false, fmt.Sprintf("`tc qdisc add ... netem delay %s` failed: %v: %s (kernel without CONFIG_NET_SCH_NETEM?)", netnsDelay, err, out)
	}
	return true, ""
}

// netnsNet is the virtual network: a bridge in the root namespace at
// 10.77.x.254/24 and, per replica, a namespace pbft-<pid>-<i> holding
// one end of a veth pair at 10.77.x.(i+1)/24, the other end on the bridge.
type netnsNet struct {
	t      *testing.T
	pid    int
	subnet int // x in 10.77.x.0/24
	netem  bool
}

func (n *netnsNet) ns(i int) string       { return fmt.Sprintf("pbft-%d-%d", n.pid, i) }
func (n *netnsNet) bridge() string        { return fmt.Sprintf("pbbr%d", n.pid) }
func (n *netnsNet) hostVeth(i int) string { return fmt.Sprintf("pbv%dh%d", n.pid, i) }
func (n *netnsNet) nsVeth(i int) string   { return fmt.Sprintf("pbv%dn%d", n.pid, i) }
func (n *netnsNet) ip(i int) string       { return fmt.Sprintf("10.77.%d.%d", n.subnet, i+1) }

// netnsPickSubnet picks x for 10.77.x.0/24 from the pid, skipping any x
// already on an address or route of the root namespace (another run of
// this test, or the machine's own network).
func netnsPickSubnet(pid int) (int, error) {
	addrs, err := netnsRun("ip", "-4", "-o", "addr", "show")
	if err != nil {
		return 0, fmt.Errorf("ip addr show: %v: %s", err, addrs)
	}
	routes, err := netnsRun("ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return 0, fmt.Errorf("ip route show: %v: %s", err, routes)
	}
	used := addrs + "\n" + routes
	for k := range 250 {
		x := 1 + (pid+k)%250
		if !strings.Contains(used, fmt.Sprintf("10.77.%d.", x)) {
			return x, nil
		}
	}
	return 0, fmt.Errorf("every 10.77.x.0/24 (x in 1..250) is in use")
}

// setupNetnsNet builds the network; its teardown is registered first, so
// it runs after everything else and even when a step fails half-way.
func setupNetnsNet(t *testing.T, netem bool) *netnsNet {
	t.Helper()
	n := &netnsNet{t: t, pid: os.Getpid(), netem: netem}
	x, err := netnsPickSubnet(n.pid)
	if err != nil {
		t.Fatal(err)
	}
	n.subnet = x
	t.Cleanup(n.teardown)
	steps := [][]string{
		{"link", "add", n.bridge(), "type", "bridge"},
		{"addr", "add", fmt.Sprintf("10.77.%d.254/24", x), "dev", n.bridge()},
		{"link", "set", n.bridge(), "up"},
	}
	for i := range procReplicas {
		ns := n.ns(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", n.hostVeth(i), "type", "veth", "peer", "name", n.nsVeth(i)},
			[]string{"link", "set", n.nsVeth(i), "netns", ns},
			[]string{"link", "set", n.hostVeth(i), "master", n.bridge()},
			[]string{"link", "set", n.hostVeth(i), "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "addr", "add", n.ip(i) + "/24", "dev", n.nsVeth(i)},
			[]string{"-n", ns, "link", "set", n.nsVeth(i), "up"},
		)
	}
	for _, s := range steps {
		if out, err := netnsRun("ip", s...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	if netem {
		for i := range procReplicas {
			args := []string{"netns", "exec", n.ns(i), "tc", "qdisc", "add", "dev", n.nsVeth(i), "root", "netem", "delay", netnsDelay}
			if out, err := netnsRun("ip", args...); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
	}
	t.Logf("network: bridge %s at 10.77.%d.254/24; replica i in namespace pbft-%d-i at 10.77.%d.(i+1)/24; netem delay on each replica's link: %v",
		n.bridge(), x, n.pid, x, map[bool]string{true: netnsDelay, false: "none"}[netem])
	return n
}

// netnsGone reports whether ip's error output says the object does not
// exist (teardown of a step that never ran).
func netnsGone(out string) bool {
	return strings.Contains(out, "Cannot find device") || strings.Contains(out, "No such file") ||
		strings.Contains(out, "does not exist")
}

// teardown deletes the namespaces (after ending any process still in
// one: only replicas this test started live there), the host ends of the
// veth pairs and the bridge, then checks nothing is left.
func (n *netnsNet) teardown() {
	for i := range procReplicas {
		ns := n.ns(i)
		if pids, err := netnsRun("ip", "netns", "pids", ns); err == nil && pids != "" {
			for _, f := range strings.Fields(pids) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					continue
				}
				n.t.Logf("teardown: process %d still in namespace %s; killing it", pid, ns)
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
			// A namespace whose last process has not exited yet outlives
			// its name; wait for it to empty.
			deadline := time.Now().Add(10 * time.Second)
			for {
				left, err := netnsRun("ip", "netns", "pids", ns)
				if err != nil || left == "" {
					break
				}
				if time.Now().After(deadline) {
					n.t.Errorf("teardown: processes %s still in namespace %s after SIGKILL", left, ns)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		if out, err := netnsRun("ip", "netns", "delete", ns); err != nil && !netnsGone(out) {
			n.t.Errorf("teardown: ip netns delete %s: %v: %s", ns, err, out)
		}
		// Deleting the namespace deletes the veth end in it and so its
		// peer; this catches a pair whose end never moved.
		if out, err := netnsRun("ip", "link", "delete", n.hostVeth(i)); err != nil && !netnsGone(out) {
			n.t.Errorf("teardown: ip link delete %s: %v: %s", n.hostVeth(i), err, out)
		}
	}
	if out, err := netnsRun("ip", "link", "delete", n.bridge()); err != nil && !netnsGone(out) {
		n.t.Errorf("teardown: ip link delete %s: %v: %s", n.bridge(), err, out)
	}
	list, _ := netnsRun("ip", "netns", "list")
	links, _ := netnsRun("ip", "-o", "link", "show")
	prefix := fmt.Sprintf("pbft-%d-", n.pid)
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, prefix) {
			n.t.Errorf("teardown left namespace %s", l)
		}
	}
	for _, l := range strings.Split(links, "\n") {
		if strings.Contains(l, fmt.Sprintf(": pbv%d", n.pid)) || strings.Contains(l, ": "+n.bridge()+":") {
			n.t.Errorf("teardown left link %s", l)
		}
	}
}

// netnsCluster is a testnet whose replicas run as `pbftnode run`
// processes, each inside its namespace.
type netnsCluster struct {
	t    *testing.T
	net  *netnsNet
	bin  string
	dir  string
	http *http.Client

	procs *proctest.Procs
}

func (c *netnsCluster) home(i int) string { return filepath.Join(c.dir, fmt.Sprintf("node%d", i)) }
func (c *netnsCluster) logPath(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("node%d.log", i))
}
func (c *netnsCluster) metricsAddr(i int) string {
	return net.JoinHostPort(c.net.ip(i), strconv.Itoa(netnsPort+100))
}

// writeNetnsTestnet writes a testnet with the binary, then points every
// replica's address at its namespace's IP (same port everywhere) and its
// metrics at that IP too, in each config.json and in client.json, and
// validates each home with `pbftnode config validate`.
func writeNetnsTestnet(t *testing.T, n *netnsNet, bin string) *netnsCluster {
	t.Helper()
	c := &netnsCluster{
		t: t, net: n, bin: bin,
		dir:   filepath.Join(t.TempDir(), "testnet"),
		http:  &http.Client{Timeout: 2 * time.Second},
		procs: proctest.NewProcs(procReplicas),
	}
	out, err := exec.Command(bin, "testnet", "--replicas", strconv.Itoa(procReplicas),
		"--dir", c.dir, "--base-port", strconv.Itoa(netnsPort)).CombinedOutput()
	if err != nil {
		t.Fatalf("pbftnode testnet: %v\n%s", err, out)
	}
	readdress := func(cf *config.ClusterFile) {
		for i := range cf.Replicas {
			cf.Replicas[i].Address = fmt.Sprintf("/ip4/%s/tcp/%d", n.ip(i), netnsPort)
		}
	}
	for i := range procReplicas {
		path := filepath.Join(c.home(i), config.FileName)
		var fc config.FileConfig
		if err := config.ReadJSON(path, &fc); err != nil {
			t.Fatal(err)
		}
		readdress(&fc.ClusterFile)
		fc.MetricsListen = c.metricsAddr(i)
		if err := config.WriteJSON(path, fc, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "config", "validate", "--home", c.home(i)).CombinedOutput(); err != nil {
			t.Fatalf("pbftnode config validate --home %s: %v\n%s", c.home(i), err, out)
		}
	}
	path := filepath.Join(c.dir, "client.json")
	var cf config.ClientFile
	if err := config.ReadJSON(path, &cf); err != nil {
		t.Fatal(err)
	}
	readdress(&cf.ClusterFile)
	if err := config.WriteJSON(path, cf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stopAll)
	t.Cleanup(func() {
		if t.Failed() {
			for i := range procReplicas {
				t.Logf("--- tail of replica %d's log (%s):\n%s", i, c.logPath(i), proctest.Tail(c.logPath(i), 25))
			}
		}
	})
	return c
}

// start starts replica i with `ip netns exec <ns> pbftnode run`; ip execs
// the binary in place, so the process is the replica itself.
func (c *netnsCluster) start(i int) error {
	return c.procs.Start(i, c.logPath(i), fmt.Sprintf("replica %d in namespace %s", i, c.net.ns(i)),
		"ip", "netns", "exec", c.net.ns(i), c.bin, "run", "--home", c.home(i), "--unsafe-no-fsync")
}

// kill sends SIGKILL to replica i and waits for it to end.
func (c *netnsCluster) kill(i int) {
	if err := c.procs.Kill(i); err != nil {
		c.t.Error(err)
	}
}

func (c *netnsCluster) stopAll() {
	for i := range procReplicas {
		c.kill(i)
	}
}

// waitServing polls replica i's /metrics over the bridge until it
// answers, failing early if the process exits.
func (c *netnsCluster) waitServing(i int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := c.procs.Get(i)
		if p == nil {
			c.t.Fatalf("replica %d is not running", i)
		}
		if done, err := p.Exited(); done {
			c.t.Fatalf("replica %d exited (%v); log tail:\n%s", i, err, proctest.Tail(c.logPath(i), 10))
		}
		_, err := c.metric(i, "pbftnode_executed_sequence")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replica %d does not serve /metrics at %s from the root namespace after %v: %v",
				i, c.metricsAddr(i), timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric scrapes replica i's /metrics over the bridge and returns the
// value of the unlabelled metric name.
func (c *netnsCluster) metric(i int, name string) (float64, error) {
	return proctest.ScrapeMetric(c.http, "http://"+c.metricsAddr(i)+"/metrics", name)
}

// waitConverged polls the replicas' pbftnode_executed_sequence until all
// of reps report the same value, at least atLeast, and returns it and how
// long that took.
func (c *netnsCluster) waitConverged(reps []int, atLeast float64, timeout time.Duration) (float64, time.Duration) {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		seqs := make([]float64, len(reps))
		var errs []error
		for k, i := range reps {
			v, err := c.metric(i, "pbftnode_executed_sequence")
			if err != nil {
				errs = append(errs, fmt.Errorf("replica %d: %w", i, err))
			}
			seqs[k] = v
		}
		if len(errs) == 0 && seqs[0] >= atLeast && slices.Min(seqs) == slices.Max(seqs) {
			return seqs[0], time.Since(start)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("executed sequences of replicas %v did not converge to one value >= %v within %v: %v (scrape errors %v)",
				reps, atLeast, timeout, seqs, errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// netnsPut puts key=value through consensus and returns how long it took.
func netnsPut(ctx context.Context, invoke func(context.Context, []byte) ([]byte, error), key, value string) (time.Duration, error) {
	start := time.Now()
	raw, err := invoke(ctx, execution.EncodePut([]byte(key), []byte(value)))
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("put %s: %w", key, err)
	}
	res, err := execution.DecodeResult(raw)
	if err != nil || !res.Ok || res.Error != "" {
		return took, fmt.Errorf("put %s: result %+v, decode error %v", key, res, err)
	}
	return took, nil
}

// netnsGet reads key through consensus.
func netnsGet(ctx context.Context, invoke func(context.Context, []byte) ([]byte, error), key string) (string, error) {
	raw, err := invoke(ctx, execution.EncodeGet([]byte(key)))
	if err != nil {
		return "", fmt.Errorf("get %s: %w", key, err)
	}
	res, err := execution.DecodeResult(raw)
	if err != nil || res.Error != "" {
		return "", fmt.Errorf("get %s: result %+v, decode error %v", key, res, err)
	}
	if !res.Ok {
		return "", fmt.Errorf("get %s: not found", key)
	}
	return string(res.Value), nil
}

func TestMultiHostNetworkNamespaces(t *testing.T) {
	testStart := time.Now()
	netem, why := netnsProbe(t)
	if !netem {
		t.Logf("NOTE: running WITHOUT the %s netem delay: %s", netnsDelay, why)
	}
	bin := pbftnodeBinary(t)
	n := setupNetnsNet(t, netem)
	c := writeNetnsTestnet(t, n, bin)
	for i := range procReplicas {
		if err := c.start(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range procReplicas {
		c.waitServing(i, 20*time.Second)
	}
	t.Logf("4 replicas serving /metrics over the bridge %v after the start", time.Since(testStart).Round(time.Millisecond))

	cl, err := openClient(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })

	// The first operation also waits for the replicas to connect to each
	// other across the namespaces.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	took, err := netnsPut(ctx, cl.Invoke, "netns-hello", "world")
	if err != nil {
		cancel()
		t.Fatalf("first put through consensus across namespaces: %v", err)
	}
	got, err := netnsGet(ctx, cl.Invoke, "netns-hello")
	cancel()
	if err != nil || got != "world" {
		t.Fatalf("get netns-hello = %q, %v; want %q", got, err, "world")
	}
	t.Logf("first put committed %v after it was sent (includes connection setup)", took.Round(time.Millisecond))

	// Latency of one put at a time on the warmed-up cluster: request,
	// pre-prepare, prepare, commit, reply; with netem each replica's send
	// crosses one delayed link, so about 4 x 5 ms plus processing.
	const latencyPuts = 20
	lat := make([]time.Duration, 0, latencyPuts)
	for k := range latencyPuts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, err := netnsPut(ctx, cl.Invoke, fmt.Sprintf("lat%02d", k), "x")
		cancel()
		if err != nil {
			t.Fatalf("sequential put %d (liveness bound 10 s): %v", k, err)
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	t.Logf("put latency over %d sequential puts (netem %v): min %v, median %v, max %v",
		latencyPuts, map[bool]string{true: netnsDelay + " per replica link", false: "off"}[netem],
		lat[0].Round(10*time.Microsecond), lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	if netem && lat[len(lat)/2] < 10*time.Millisecond {
		t.Logf("NOTE: median put latency %v is below 10 ms although netem adds %s per replica hop: is the delay applied?",
			lat[len(lat)/2], netnsDelay)
	}

	const phase = 400
	putRange(t, cl, 0, phase, 8)
	seq, d := c.waitConverged([]int{0, 1, 2, 3}, 1, 20*time.Second)
	t.Logf("all 4 replicas at executed sequence %v (converged %v after the load)", seq, d.Round(time.Millisecond))

	// Kill a backup: the other three are still a quorum (2f+1 = 3).
	const victim = 3
	c.kill(victim)
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	took, err = netnsPut(ctx, cl.Invoke, "netns-after-kill", "still")
	if err == nil {
		got, err = netnsGet(ctx, cl.Invoke, "netns-after-kill")
		if err == nil && got != "still" {
			err = fmt.Errorf("get netns-after-kill = %q, want %q", got, "still")
		}
	}
	cancel()
	if err != nil {
		t.Fatalf("with replica %d killed: %v", victim, err)
	}
	t.Logf("with replica %d killed, a put committed in %v", victim, took.Round(10*time.Microsecond))
	putRange(t, cl, phase, 2*phase, 8)
	seqLive, d := c.waitConverged([]int{0, 1, 2}, seq+1, 20*time.Second)
	t.Logf("replicas 0-2 at executed sequence %v without replica %d (converged %v after the load)", seqLive, victim, d.Round(time.Millisecond))

	// Restart it in its namespace; it must catch up over the bridge.
	if err := c.start(victim); err != nil {
		t.Fatal(err)
	}
	c.waitServing(victim, 20*time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
	_, err = netnsPut(ctx, cl.Invoke, "netns-after-restart", "back")
	cancel()
	if err != nil {
		t.Fatalf("after restarting replica %d: %v", victim, err)
	}
	seqAll, d := c.waitConverged([]int{0, 1, 2, 3}, seqLive+1, 30*time.Second)
	t.Logf("restarted replica %d caught up: all 4 at executed sequence %v (%v after its first put)", victim, seqAll, d.Round(time.Millisecond))

	// Every replica must hold the same values: read sample keys through a
	// client that needs all four replies to agree.
	pc := &procCluster{t: t, dir: c.dir}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x4e7))
	pc.checkSampleWith(proctest.ClientOf(t, c.dir, procReplicas), sampleKeys(rng, 2*phase, 20))
	t.Logf("done in %v", time.Since(testStart).Round(time.Millisecond))
}
