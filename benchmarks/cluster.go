package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
)

// clusterSpec says how to write and start a cluster.
type clusterSpec struct {
	binary    string
	protocol  string
	replicas  int
	noFsync   bool
	logLevel  string // the replicas' --log-level, or "" for their default
	profDir   string // when set, replica i writes a CPU profile to profDir/nodeI.pprof
	dir       string // parent directory; each attempt writes a subdirectory
	byzantine map[int]string
	// noReceipts writes the testnet with receipts off (--no-receipts).
	noReceipts bool
	// checkDirectCommits writes it with check_direct_commits on
	// (--check-direct-commits).
	checkDirectCommits bool
	// receiptsCachedOnly writes it with --receipts-cached-only.
	receiptsCachedOnly bool
	// toggle starts the byzantine strategies inactive
	// (--byzantine-toggle): SIGUSR1 switches them on, SIGUSR2 off.
	toggle bool
	// ledgerIssuer, when set, makes the testnet a ledger whose issuer it
	// is (testnet --app ledger --issuer-key).
	ledgerIssuer *ledgerIssuer
	// testnetArgs are added to the testnet command (the scale sweep's
	// --preload-keys).
	testnetArgs []string
	rng         *rand.Rand
	log         *slog.Logger
}

// testnetProtocol is the protocol of the testnet's configuration: a
// floor cluster runs on a PBFT configuration.
func (s clusterSpec) testnetProtocol() string {
	if s.protocol == ProtocolFloor {
		return "pbft"
	}
	return s.protocol
}

// cluster is a testnet whose replicas run as `pbftnode run` processes.
type cluster struct {
	spec clusterSpec
	dir  string
	base int
	hc   *http.Client

	mu    sync.Mutex
	procs []*replicaProc // nil: not running
}

// replicaProc is one running replica process.
type replicaProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's result, valid after exited
}

// startCluster writes a testnet with the binary, starts every replica and
// waits until each reports ready. A replica that cannot listen (another
// process took a port between the check and the bind) makes it retry
// with other ports, three attempts in all.
func startCluster(ctx context.Context, spec clusterSpec) (*cluster, error) {
	var lastErr error
	for attempt := range 3 {
		base, err := freeBasePort(spec.rng, spec.replicas)
		if err != nil {
			return nil, err
		}
		c := &cluster{
			spec:  spec,
			dir:   filepath.Join(spec.dir, fmt.Sprintf("testnet%d", attempt)),
			base:  base,
			hc:    &http.Client{Timeout: 2 * time.Second},
			procs: make([]*replicaProc, spec.replicas),
		}
		args := []string{"testnet", "--protocol", spec.testnetProtocol(), "--replicas", strconv.Itoa(spec.replicas),
			"--dir", c.dir, "--base-port", strconv.Itoa(base)}
		if spec.noFsync {
			args = append(args, "--unsafe-no-fsync")
		}
		if spec.noReceipts {
			args = append(args, "--no-receipts")
		}
		if spec.receiptsCachedOnly {
			args = append(args, "--receipts-cached-only")
		}
		if spec.checkDirectCommits {
			args = append(args, "--check-direct-commits")
		}
		if spec.ledgerIssuer != nil {
			args = append(args, "--app", AppLedger, "--issuer-key", spec.ledgerIssuer.path)
		}
		args = append(args, spec.testnetArgs...)
		if out, err := exec.CommandContext(ctx, spec.binary, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pbftnode %v: %w: %s", args, err, out)
		}
		if lastErr = c.startAll(ctx); lastErr == nil {
			return c, nil
		}
		spec.log.Warn("cluster did not start; retrying with other ports", "attempt", attempt, "base_port", base, "err", lastErr)
		c.stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("could not start the %s cluster: %w", spec.protocol, lastErr)
}

// freeBasePort finds P such that P..P+n-1 and P+100..P+100+n-1 are free
// on 127.0.0.1 right now.
func freeBasePort(rng *rand.Rand, n int) (int, error) {
	for range 100 {
		base := 40000 + rng.IntN(10000-100-n)
		var ls []net.Listener
		free := true
		for i := range n {
			for _, p := range []int{base + i, base + 100 + i} {
				l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
				if err != nil {
					free = false
					break
				}
				ls = append(ls, l)
			}
		}
		for _, l := range ls {
			_ = l.Close()
		}
		if free {
			return base, nil
		}
	}
	return 0, errors.New("no free block of ports in 40000-50000")
}

func (c *cluster) home(i int) string    { return filepath.Join(c.dir, fmt.Sprintf("node%d", i)) }
func (c *cluster) logPath(i int) string { return filepath.Join(c.dir, fmt.Sprintf("node%d.log", i)) }
func (c *cluster) httpURL(i int, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", c.base+100+i, path)
}

// startAll starts every replica and waits until each is ready.
func (c *cluster) startAll(ctx context.Context) error {
	for i := range c.spec.replicas {
		if err := c.start(i); err != nil {
			return err
		}
	}
	return c.waitReady(ctx, 30*time.Second)
}

// start starts replica i as `pbftnode run --home DIR/nodeI`, its output
// appended to DIR/nodeI.log. The process is killed if the bench process
// dies first.
func (c *cluster) start(i int) error {
	p, err := startProcess(c.spec.binary, c.replicaArgs(i), c.logPath(i), 0)
	if err != nil {
		return fmt.Errorf("replica %d: %w", i, err)
	}
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
	return nil
}

// startProcess starts binary with args, its output appended to logPath.
// The process gets SIGKILL if the bench process dies first (Pdeathsig).
// The peers' processes (peer*.go) start the same way, with gomaxprocs > 0:
// GOMAXPROCS set to it unless the environment sets it, as pbftnode's
// testnet sets each replica's gomaxprocs (config.CPUShare), so
// every system runs its processes with their share of the machine.
func startProcess(binary string, args []string, logPath string, gomaxprocs int) (*replicaProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	cmd := exec.Command(binary, args...)
	if _, set := os.LookupEnv("GOMAXPROCS"); gomaxprocs > 0 && !set {
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	p := &replicaProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// replicaArgs is replica i's `pbftnode run` command line. A replica with
// a byzantine strategy gets --byzantine; in the attack scenarios also
// --byzantine-toggle, which starts it inactive.
func (c *cluster) replicaArgs(i int) []string {
	args := []string{"run", "--home", c.home(i)}
	if c.spec.noFsync {
		args = append(args, "--unsafe-no-fsync")
	}
	if c.spec.protocol == ProtocolFloor {
		args = append(args, "--benchmark-floor")
	}
	if s := c.spec.byzantine[i]; s != "" {
		args = append(args, "--byzantine", s)
		if c.spec.toggle {
			args = append(args, "--byzantine-toggle")
		}
	}
	if c.spec.logLevel != "" {
		args = append(args, "--log-level", c.spec.logLevel)
	}
	if c.spec.profDir != "" {
		args = append(args, "--cpuprofile", filepath.Join(c.spec.profDir, fmt.Sprintf("node%d.pprof", i)))
	}
	return args
}

// proc returns replica i's process, or nil.
func (c *cluster) proc(i int) *replicaProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i]
}

// running lists the replicas whose processes were started and not killed.
func (c *cluster) running() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, p := range c.procs {
		if p != nil {
			out = append(out, i)
		}
	}
	return out
}

// pid returns replica i's process ID, or 0 if it is not running.
func (c *cluster) pid(i int) int {
	if p := c.proc(i); p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// kill sends SIGKILL to replica i and waits for the process to end.
func (c *cluster) kill(i int) error {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("replica %d (pid %d) did not exit 10 s after SIGKILL", i, p.cmd.Process.Pid)
	}
}

// stop ends every replica: SIGTERM, then SIGKILL for those still running
// after 3 s.
func (c *cluster) stop() {
	c.mu.Lock()
	procs := c.procs
	c.procs = make([]*replicaProc, len(procs))
	c.mu.Unlock()
	stopProcesses(procs, 3*time.Second)
}

// stopProcesses sends SIGTERM to every process (nil entries are skipped),
// then SIGKILL to those still running after grace, and waits for all.
func stopProcesses(procs []*replicaProc, grace time.Duration) {
	for _, p := range procs {
		if p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(grace)
	for _, p := range procs {
		if p == nil {
			continue
		}
		select {
		case <-p.exited:
		case <-deadline:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// waitReady polls every running replica's /readyz until each answers 200,
// failing early if a process exits.
func (c *cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, i := range c.running() {
		for {
			p := c.proc(i)
			select {
			case <-p.exited:
				return fmt.Errorf("replica %d exited (%v); log tail:\n%s", i, p.err, tailFile(c.logPath(i), 8))
			default:
			}
			body, err := get(ctx, c.hc, c.httpURL(i, "/readyz"))
			if err == nil {
				body.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("replica %d not ready after %v: %w", i, timeout, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// status fetches replica i's /status.
func (c *cluster) status(ctx context.Context, i int) (statusDoc, error) {
	var st statusDoc
	err := getJSON(ctx, c.hc, c.httpURL(i, "/status"), &st)
	return st, err
}

// leader returns the replica the running replicas name as the current
// primary or leader, asking again for up to 5 s while none is named (a
// Raft election in progress).
func (c *cluster) leader(ctx context.Context) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := c.leaderOnce(ctx)
		if err == nil || time.Now().After(deadline) {
			return l, err
		}
		if err := sleepUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return -1, err
		}
	}
}

// leaderOnce asks every running replica once: /status "leader" where
// reported (-1: unknown), else (PBFT builds without it) view mod n. The
// most common answer wins.
func (c *cluster) leaderOnce(ctx context.Context) (int, error) {
	votes := make(map[int]int)
	var lastErr error
	for _, i := range c.running() {
		st, err := c.status(ctx, i)
		if err != nil {
			lastErr = err
			continue
		}
		switch {
		case st.Leader != nil && *st.Leader >= 0:
			votes[*st.Leader]++
		case st.Leader == nil && c.spec.protocol == "pbft":
			votes[int(st.View%uint64(c.spec.replicas))]++
		}
	}
	best, bestVotes := -1, 0
	for l, v := range votes {
		if v > bestVotes || (v == bestVotes && l < best) {
			best, bestVotes = l, v
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("no running replica names a leader (last error: %v)", lastErr)
	}
	return best, nil
}

// counters is one sample of a replica's resource counters.
type counters struct {
	cpuSeconds   float64
	p2pBytesSent float64 // pbftnode_p2p_bytes_sent_total: frame bytes, per recipient
	msgBytesSent float64 // pbftnode_message_bytes_sent_total: protocol messages, a broadcast once
	view         float64 // pbftnode_view: the PBFT view or Raft term
	batches      float64 // pbftnode_committed_batches_total
	requests     float64 // pbftnode_committed_requests_total
	// persistSeconds and persists are pbftnode_persist_seconds' sum and
	// count: the synced log writes (PBFT appends, Raft saves).
	persistSeconds, persists float64
	// phaseSeconds and phases are pbftnode_phase_seconds' sum and count
	// by phase.
	phaseSeconds, phases map[string]float64
	// dropped is pbftnode_messages_dropped_total by reason, plus the
	// transport's drops (queue_full, inbound_full, rate_limited).
	dropped map[string]float64
	// tentative is pbftnode_tentative_batches_total by outcome.
	tentative map[string]float64
}

// Metric names the harness reads.
const (
	metricP2PBytesSent = "pbftnode_p2p_bytes_sent_total"
	metricMsgBytesSent = "pbftnode_message_bytes_sent_total"
	metricView         = "pbftnode_view"
	metricBatches      = "pbftnode_committed_batches_total"
	metricRequests     = "pbftnode_committed_requests_total"
	metricDropped      = "pbftnode_messages_dropped_total"
	metricPersistSum   = "pbftnode_persist_seconds_sum"
	metricPersistCount = "pbftnode_persist_seconds_count"
	metricPhaseSum     = "pbftnode_phase_seconds_sum"
	metricPhaseCount   = "pbftnode_phase_seconds_count"
	metricTentative    = "pbftnode_tentative_batches_total"
)

// transportDrops maps the transport's drop counters to the reasons the
// harness reports them under.
var transportDrops = map[string]string{
	"pbftnode_p2p_dropped_queue_full_total":   "p2p_queue_full",
	"pbftnode_p2p_dropped_inbound_full_total": "p2p_inbound_full",
	"pbftnode_p2p_rate_limited_total":         "p2p_rate_limited",
	// The inbound isolation's own counters (issue 15): frames a source's
	// full queue refused, frames of a backed-off (provably faulty) sender,
	// streams reset for a stalled frame or too many incomplete bytes.
	"pbftnode_p2p_dropped_faulty_total":            "p2p_faulty",
	"pbftnode_p2p_incomplete_frame_timeouts_total": "p2p_incomplete_frame_timeout",
	"pbftnode_p2p_rejected_partial_total":          "p2p_rejected_partial",
	// Client streams a key opened over its stream-opening limit, reset
	// unread (the client-flood attack's new sessions).
	"pbftnode_p2p_client_streams_refused_total": "p2p_streams_refused",
}

// metricInboundDropped counts frames dropped because their own source's
// inbound queue was full, by source class; the harness reports them as
// p2p_inbound_full_<class>.
const metricInboundDropped = "pbftnode_p2p_inbound_dropped_total"

// sample reads replica i's CPU time and byte counters.
func (c *cluster) sample(ctx context.Context, i int) (counters, error) {
	var s counters
	pid := c.pid(i)
	if pid == 0 {
		return s, fmt.Errorf("replica %d is not running", i)
	}
	var err error
	if s.cpuSeconds, err = processCPUSeconds(pid); err != nil {
		return s, err
	}
	body, err := get(ctx, c.hc, c.httpURL(i, "/metrics"))
	if err != nil {
		return s, err
	}
	defer body.Close()
	names := []string{metricP2PBytesSent, metricMsgBytesSent, metricView, metricBatches, metricRequests, metricDropped, metricInboundDropped, metricPersistSum, metricPersistCount, metricPhaseSum, metricPhaseCount, metricTentative}
	for name := range transportDrops {
		names = append(names, name)
	}
	sums, err := metricSums(body, names...)
	if err != nil {
		return s, fmt.Errorf("replica %d: %w", i, err)
	}
	s.p2pBytesSent, s.msgBytesSent, s.view = sums[metricP2PBytesSent], sums[metricMsgBytesSent], sums[metricView]
	s.batches, s.requests = sums[metricBatches], sums[metricRequests]
	s.persistSeconds, s.persists = sums[metricPersistSum], sums[metricPersistCount]
	s.dropped = make(map[string]float64)
	s.phaseSeconds, s.phases = make(map[string]float64), make(map[string]float64)
	s.tentative = make(map[string]float64)
	for series, v := range sums {
		if phase, ok := strings.CutPrefix(series, metricPhaseSum+`{phase="`); ok {
			s.phaseSeconds[strings.TrimSuffix(phase, `"}`)] += v
		}
		if phase, ok := strings.CutPrefix(series, metricPhaseCount+`{phase="`); ok {
			s.phases[strings.TrimSuffix(phase, `"}`)] += v
		}
		if outcome, ok := strings.CutPrefix(series, metricTentative+`{outcome="`); ok {
			s.tentative[strings.TrimSuffix(outcome, `"}`)] += v
		}
		if reason, ok := strings.CutPrefix(series, metricDropped+`{reason="`); ok {
			s.dropped[strings.TrimSuffix(reason, `"}`)] += v
		}
		if class, ok := strings.CutPrefix(series, metricInboundDropped+`{class="`); ok {
			s.dropped["p2p_inbound_full_"+strings.TrimSuffix(class, `"}`)] += v
		}
	}
	for name, reason := range transportDrops {
		s.dropped[reason] += sums[name]
	}
	return s, nil
}

// clientConfig reads DIR/client.json: the cluster ID and the replicas as
// transport members (each bench client brings its own key).
func (c *cluster) clientConfig() (string, []p2p.Member, error) {
	cf, members, err := node.ReadClientFile(c.dir)
	return cf.ClusterID, members, err
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	const maxTail = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		_, _ = f.Seek(st.Size()-maxTail, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killBackup kills a backup: the highest of the replicas indices that is
// not the leader. It returns that replica and the leader.
func (c *cluster) killBackup(ctx context.Context, replicas int) (victim, leader int, err error) {
	if leader, err = c.leader(ctx); err != nil {
		return 0, 0, err
	}
	victim = replicas - 1
	if victim == leader {
		victim--
	}
	if err := c.kill(victim); err != nil {
		return 0, 0, err
	}
	return victim, leader, nil
}
