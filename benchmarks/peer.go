package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// The peer systems a benchmark can measure instead of pbftnode
// (Config.Peer): what a user would run instead, started on loopback and
// driven by the same load (load.go) as pbftnode's clients.
const (
	// PeerEtcd is etcd (Debian's etcd-server): Replicas members, fsync
	// on, Put and linearizable Get over clientv3 (peer_etcd.go).
	PeerEtcd = "etcd"
	// PeerCometBFT is CometBFT v0.38 with its built-in kvstore app:
	// Replicas validators, broadcast_tx_commit and abci_query over HTTP
	// JSON-RPC (peer_cometbft.go).
	PeerCometBFT = "cometbft"
)

// Peers lists the peer systems, in the order Compare runs them.
var Peers = []string{PeerEtcd, PeerCometBFT}

// DefaultCometBFTTimeoutCommit is the CometBFT validators' default
// timeout_commit in the benchmark: the tuned setting of issue 21's table
// (CometBFT's own default, 1 s, caps it at about one block a second).
const DefaultCometBFTTimeoutCommit = 10 * time.Millisecond

// peerStartTimeout bounds how long a peer's cluster may take to serve.
const peerStartTimeout = 30 * time.Second

// peerStopGrace is how long the members may take to exit after SIGTERM
// before SIGKILL. It is short: the data is thrown away, and an etcd
// leader whose followers exited with it keeps trying to hand over its
// leadership for seconds.
const peerStopGrace = 1500 * time.Millisecond

// ErrPeerMissing marks a peer whose executable was not found.
var ErrPeerMissing = errors.New("peer system not installed")

// peerCluster is a started peer system.
type peerCluster interface {
	// runners connects n logical clients and returns their operation
	// runners and a function that closes them.
	runners(n, conns int) ([]opRunner, func(), error)
	// processes lists the members' processes (for their CPU time).
	processes() []*replicaProc
	// describe fills in the result's peer fields.
	describe(res *Result)
	// stop ends every member: SIGTERM, then SIGKILL.
	stop()
}

// peerStarter writes and starts a peer cluster in dir (a new, empty
// directory) with the executable binary, and waits until it serves.
type peerStarter func(ctx context.Context, cfg Config, binary, dir string) (peerCluster, error)

// validatePeer checks a peer configuration's own fields.
func (c Config) validatePeer() error {
	switch {
	case !slices.Contains(Peers, c.Peer):
		return fmt.Errorf("%w: peer %q: want one of %v", ErrConfig, c.Peer, Peers)
	case c.App != AppKV:
		return fmt.Errorf("%w: the peers run the key-value workload only, not --app %s", ErrConfig, c.App)
	case c.Scenario != ScenarioNone:
		return fmt.Errorf("%w: the peers run without faults, not scenario %q", ErrConfig, c.Scenario)
	case c.NoReceipts || c.ReceiptsCachedOnly || c.AskReceipts || c.CheckDirectCommits || c.CPUProfileDir != "" || c.ReplicaLogLevel != "":
		return fmt.Errorf("%w: receipts, COMMIT checks, replica profiles and replica log levels are pbftnode settings, not %s's", ErrConfig, c.Peer)
	case c.Replicas < 1:
		return fmt.Errorf("%w: %s needs at least 1 member, got %d", ErrConfig, c.Peer, c.Replicas)
	case c.Peer == PeerCometBFT && c.NoFsync:
		return fmt.Errorf("%w: CometBFT has no switch to turn fsync off", ErrConfig)
	case c.Peer == PeerCometBFT && c.CometBFTTimeoutCommit < 0:
		return fmt.Errorf("%w: negative CometBFT timeout_commit %v", ErrConfig, c.CometBFTTimeoutCommit)
	}
	return nil
}

// FindPeer returns the path of peer's executable: override when not
// empty (Config.PeerBinary), else etcd on PATH, or cometbft on PATH or in
// $(go env GOPATH)/bin. A missing one is an ErrPeerMissing error that
// names the install command.
func FindPeer(peer, override string) (string, error) {
	if override != "" {
		if _, err := os.Stat(override); err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrPeerMissing, peer, err)
		}
		return override, nil
	}
	switch peer {
	case PeerEtcd:
		if path, err := exec.LookPath("etcd"); err == nil {
			return path, nil
		}
		return "", fmt.Errorf("%w: etcd is not on PATH; install it with `apt-get install etcd-server` (Debian, Ubuntu)", ErrPeerMissing)
	case PeerCometBFT:
		if path, err := exec.LookPath("cometbft"); err == nil {
			return path, nil
		}
		if gopath := goPath(); gopath != "" {
			path := filepath.Join(gopath, "bin", "cometbft")
			if st, err := os.Stat(path); err == nil && !st.IsDir() {
				return path, nil
			}
		}
		return "", fmt.Errorf("%w: cometbft is neither on PATH nor in $(go env GOPATH)/bin; install it with `go install github.com/cometbft/cometbft/cmd/cometbft@v0.38.26`", ErrPeerMissing)
	}
	return "", fmt.Errorf("%w: unknown peer %q", ErrConfig, peer)
}

// goPath is the first entry of $(go env GOPATH), or $GOPATH's, or
// $HOME/go; "" if none is known.
func goPath() string {
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			return filepath.SplitList(s)[0]
		}
	}
	if s := os.Getenv("GOPATH"); s != "" {
		return filepath.SplitList(s)[0]
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go")
	}
	return ""
}

// peerStarters maps each peer to how it starts.
var peerStarters = map[string]peerStarter{
	PeerEtcd:     startEtcd,
	PeerCometBFT: startCometBFT,
}

// runPeer measures cfg (with defaults, cfg.Peer set): it starts the peer
// on loopback, runs the load against it and stops it.
func runPeer(ctx context.Context, cfg Config) (Result, error) {
	res := header(cfg)
	prog := progress{w: cfg.Progress, label: cfg.Label}
	binary, err := FindPeer(cfg.Peer, cfg.PeerBinary)
	if err != nil {
		return res, err
	}
	if cfg.QuietWait > 0 {
		waited, load, err := waitQuiet(ctx, cfg.QuietWait, prog)
		if err != nil {
			return res, err
		}
		res.QuietWaitS, res.StartLoadCores = waited.Seconds(), load
	}
	workDir := cfg.WorkDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "pbftnode-bench-"+cfg.Peer+"-"); err != nil {
			return res, fmt.Errorf("work directory: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(workDir)
		}
	}
	prog.say("starting %d %s members (%s)", cfg.Replicas, cfg.Peer, binary)
	pc, dir, err := startPeer(ctx, cfg, binary, workDir)
	if err != nil {
		return res, err
	}
	defer pc.stop()
	pc.describe(&res)
	if err := measurePeer(ctx, cfg, pc, prog, &res); err != nil {
		if !cfg.Keep && cfg.WorkDir == "" {
			return res, fmt.Errorf("%w (%s logs removed; --keep keeps them)", err, cfg.Peer)
		}
		return res, fmt.Errorf("%w (%s logs in %s)", err, cfg.Peer, dir)
	}
	return res, nil
}

// startPeer starts the peer in a new subdirectory of workDir, up to three
// attempts (another process may take a free port before a member binds
// it). It returns the cluster and its directory.
func startPeer(ctx context.Context, cfg Config, binary, workDir string) (peerCluster, string, error) {
	var lastErr error
	for attempt := range 3 {
		dir := filepath.Join(workDir, fmt.Sprintf("%s%d", cfg.Peer, attempt))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", fmt.Errorf("%s directory: %w", cfg.Peer, err)
		}
		pc, err := peerStarters[cfg.Peer](ctx, cfg, binary, dir)
		if err == nil {
			return pc, dir, nil
		}
		lastErr = err
		if ctx.Err() != nil || errors.Is(err, ErrConfig) {
			return nil, "", err
		}
		cfg.Logger.Warn("peer did not start; retrying with other ports", "peer", cfg.Peer, "attempt", attempt, "err", err)
	}
	return nil, "", fmt.Errorf("could not start %s: %w", cfg.Peer, lastErr)
}

// measurePeer runs the load against a started peer and fills in res: the
// same load and statistics as measure, with the members' CPU time.
func measurePeer(ctx context.Context, cfg Config, pc peerCluster, prog progress, res *Result) error {
	runners, closeRunners, err := pc.runners(cfg.Clients, cfg.Connections)
	if err != nil {
		return err
	}
	defer closeRunners()
	ld := newLoad(cfg, runners, newKVWorkload(cfg))
	start, stopLoad := ld.background(ctx, prog)
	defer stopLoad()
	from, to := cfg.Warmup, cfg.Warmup+cfg.Duration
	if err := sleepUntil(ctx, start.Add(from)); err != nil {
		return err
	}
	before, err := peerCPU(pc)
	if err != nil {
		return err
	}
	meter := startCPUMeter()
	if err := sleepUntil(ctx, start.Add(to)); err != nil {
		return err
	}
	after, err := peerCPU(pc)
	if err != nil {
		return err
	}
	meter.stop()
	stopLoad()

	samples, failed := ld.rec.snapshot()
	w := within(samples, from, to)
	summarize(res, w, failed, int(ld.dropped.Load()), cfg.Duration, before, after)
	meter.report(res, w.ops, cfg.Duration)
	if res.Ops == 0 {
		return fmt.Errorf("no operation completed in the measured %v (%d failed)", cfg.Duration, failed)
	}
	return nil
}

// peerCPU samples every member's CPU time.
func peerCPU(pc peerCluster) (map[int]counters, error) {
	out := make(map[int]counters)
	for i, p := range pc.processes() {
		cpu, err := processCPUSeconds(p.cmd.Process.Pid)
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		out[i] = counters{cpuSeconds: cpu}
	}
	return out, nil
}

// freeLoopbackPorts returns n distinct TCP ports free on 127.0.0.1 right
// now (the kernel's choice; a process may still take one before the
// member binds it, which startPeer's attempts absorb).
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitMembers polls ready until it returns nil, failing early with the
// member's log tail if one of procs exits, and with every member's log
// tail after timeout.
func waitMembers(ctx context.Context, procs []*replicaProc, logs []string, timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		for i, p := range procs {
			select {
			case <-p.exited:
				return fmt.Errorf("member %d exited (%v); log tail:\n%s", i, p.err, tailFile(logs[i], 8))
			default:
			}
		}
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(attemptCtx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			var tails strings.Builder
			for i, l := range logs {
				fmt.Fprintf(&tails, "\nmember %d log tail:\n%s", i, tailFile(l, 8))
			}
			return fmt.Errorf("not serving after %v: %w%s", timeout, err, tails.String())
		}
		if err := sleepUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return err
		}
	}
}

// kvOp is one decoded operation of the key-value workload, as a peer
// runs it.
type kvOp struct {
	key, value []byte
	get        bool
}

// decodeKVOp decodes an operation newKVWorkload drew (execution's
// encoding): the peers run the very operations pbftnode's clients send.
func decodeKVOp(op []byte) (kvOp, error) {
	var o wire.KVOperation
	if err := proto.Unmarshal(op, &o); err != nil {
		return kvOp{}, fmt.Errorf("decode operation: %w", err)
	}
	switch {
	case o.GetPut() != nil:
		return kvOp{key: o.GetPut().GetKey(), value: o.GetPut().GetValue()}, nil
	case o.GetGet() != nil:
		return kvOp{key: o.GetGet().GetKey(), get: true}, nil
	}
	return kvOp{}, errors.New("decode operation: neither a put nor a get")
}

// executedResult is what a peer's runner returns for an operation the
// peer executed: an empty execution result (no error), which the
// workload counts as executed.
var executedResult = []byte{}
