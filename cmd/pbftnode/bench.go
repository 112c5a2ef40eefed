package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pbftnode/pbftnode/benchmarks"
	"github.com/pbftnode/pbftnode/byzantine"
)

// runBench parses the bench flags and hands over to package benchmarks.
func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg benchmarks.Config
	fs.StringVar(&cfg.Protocol, "protocol", "pbft", "consensus protocol: pbft or raft; or floor: PBFT's signature checks and messages to clients without agreement, persistence or execution (the most PBFT could reach here)")
	fs.StringVar(&cfg.App, "app", benchmarks.AppKV, "the replicated application: kv (puts, --get-ratio gets) or ledger (transfers between the clients' accounts, after a setup that mints to each; --get-ratio balance reads)")
	fs.IntVar(&cfg.Replicas, "replicas", 0, "number of replicas (default 4 for pbft, 3 for raft; with --peer: 3 etcd members, 4 CometBFT validators)")
	fs.StringVar(&cfg.Peer, "peer", "", "measure a peer system instead of pbftnode, under the same load: "+strings.Join(benchmarks.Peers, " or ")+" (started on loopback; see docs/benchmarks.md, \"Peers\")")
	fs.StringVar(&cfg.PeerBinary, "peer-binary", "", "--peer: the peer's executable (default: etcd on PATH; cometbft on PATH or in $(go env GOPATH)/bin)")
	fs.DurationVar(&cfg.CometBFTTimeoutCommit, "cometbft-timeout-commit", benchmarks.DefaultCometBFTTimeoutCommit, "--peer cometbft: the validators' timeout_commit (CometBFT's own default is 1s)")
	fs.BoolVar(&cfg.NoFsync, "unsafe-no-fsync", false, "run the replicas with fsync off")
	fs.BoolVar(&cfg.ReceiptsCachedOnly, "receipts-cached-only", false, "PBFT: receipts only on replies to retransmitted requests (see docs/receipts.md)")
	fs.BoolVar(&cfg.AskReceipts, "receipts", false, "PBFT: every write asks for a receipt and waits for f+1 valid ones (client InvokeWithReceipt); by default the clients ask for none and the replicas sign none")
	fs.BoolVar(&cfg.CommittedRepliesOnly, "committed-replies-only", false, "PBFT: the clients ask for no tentative replies (each result waits for f+1 committed replies, a message round later), to measure what tentative replies save")
	fs.BoolVar(&cfg.NoReceipts, "no-receipts", false, "PBFT: run the replicas with receipts off (no signature per batch), to measure what receipts cost")
	fs.BoolVar(&cfg.CheckDirectCommits, "check-direct-commits", false, "PBFT: the replicas check every COMMIT's signature, even one its author's own session delivered (check_direct_commits), to measure what taking those on the session's word saves")
	fs.StringVar(&cfg.Scenario, "scenario", benchmarks.ScenarioNone, "fault: "+strings.Join(benchmarks.Scenarios, ", ")+" (the attack scenarios measure a fault-free baseline, the attack and the recovery, each --duration long at most)")
	fs.StringVar(&cfg.CPUProfileDir, "cpuprofile-dir", "", "write CPU profiles of every replica (nodeI.pprof) and of the clients (harness.pprof) into this directory")
	fs.StringVar(&cfg.ReplicaLogLevel, "replica-log-level", "", "pass --log-level to every replica (e.g. debug, with --keep to study the replica logs)")
	fs.StringVar(&cfg.ByzantineStrategy, "byzantine-strategy", benchmarks.DefaultByzantineStrategy,
		"strategy of the Byzantine replica in --scenario byzantine: "+strings.Join(byzantine.Strategies, ", "))
	fs.Float64Var(&cfg.AttackRate, "attack-rate", 0, "attack scenarios with an attacking client: its rate bound, in the unit of pbftnode attack --rate (0: the kind's default)")
	fs.DurationVar(&cfg.RecoveryCap, "recovery-cap", 15*time.Second, "attack scenarios: how long to wait after the attack for the throughput to recover (reported as recovery_ms if it never does)")
	fs.IntVar(&cfg.Clients, "clients", benchmarks.DefaultClients, "number of logical clients (closed-loop requesters, each with --window operations outstanding)")
	fs.IntVar(&cfg.Connections, "connections", 0, fmt.Sprintf("connections the logical clients share, round robin, for every system: pbftnode client instances (own key, connections to every replica) or etcd clients (default %d; at least clients x window / 64 for pbftnode; one per client for --app ledger and the attack scenarios)", benchmarks.DefaultConnections))
	fs.IntVar(&cfg.Window, "window", 0, fmt.Sprintf("closed loop: outstanding operations per client, 1-64 (default %d, or 1 with --clients 1: light load); open loop: the bound per client", benchmarks.DefaultWindow))
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: issue this many operations per second (0: closed loop)")
	fs.Float64Var(&cfg.GetRatio, "get-ratio", 0, "fraction of operations that are gets, sent through client.Read (the read-only path; the rest are ordered puts); results split reads and writes")
	fs.IntVar(&cfg.Payload, "payload", 16, "bytes of each put's value: 16, 1024 or 4096")
	fs.IntVar(&cfg.Keys, "keys", 10000, "size of the key space")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured interval of each configuration")
	fs.DurationVar(&cfg.Warmup, "warmup", 1500*time.Millisecond, "load before measuring (negative: none; the byzantine scenario measures from the start)")
	fs.DurationVar(&cfg.CeilingDuration, "ceiling-duration", 2*time.Second, "how long to measure the crypto ceiling before a PBFT cluster starts (negative: skip)")
	fs.DurationVar(&cfg.ClientRetransmit, "client-retransmit", 500*time.Millisecond, "the clients' retransmission timeout")
	fs.DurationVar(&cfg.QuietWait, "wait-quiet", 0, "first wait up to this long for other work to leave the machine idle (default: 0, or 1m per configuration with --compare; negative: never)")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the workload's key and operation choice")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "directory for the testnets (default: a temporary one, removed afterwards)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temporary testnet directories and replica logs")
	asJSON := fs.Bool("json", false, "print JSON on stdout: one object for one configuration, a list for --compare")
	showProgress := fs.Bool("progress", false, "print progress on stderr even with --json (it is on without --json)")
	compare := fs.Bool("compare", false, "run the standard matrix (PBFT n=4,7,10 and Raft n=3,5,7, the floor, fsync off, faults, 64 x 1, one client, open-loop sweep; then etcd and CometBFT where installed, at the saturated, 64 x 1 and one-client loads) and write table, JSON and plots to --out")
	out := fs.String("out", "benchmarks/results", "--compare, --scale: directory for the results (JSON, table) and the SVG plots")
	scale := fs.String("scale", "", "run the cost-as-work-grows sweeps and write scale.json, scale.txt and plots to --out: "+strings.Join(benchmarks.ScalePlans, ", ")+" (see docs/benchmarks.md)")
	logs := addLogFlags(fs, "warn")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pbftnode bench [flags]           one configuration\n       pbftnode bench --compare [flags] the standard matrix")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	applyBenchRuntimeSettings()
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if err := checkPeerFlags(fs, cfg.Peer, *compare); err != nil {
		return err
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	if !*asJSON || *showProgress {
		cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *scale != "" {
		return runScale(ctx, cfg, *scale, *out, *asJSON, stdout, stderr)
	}
	if *compare {
		if cfg.App != benchmarks.AppKV {
			return fmt.Errorf("%w: --compare measures the key-value store; run --app %s without it (once per protocol)", errUsage, cfg.App)
		}
		return runCompare(ctx, cfg, *out, *asJSON, stdout, stderr)
	}
	res, err := benchmarks.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, benchmarks.ErrConfig) {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		return err
	}
	if *asJSON {
		return benchmarks.WriteJSON(stdout, []benchmarks.Result{res})
	}
	return benchmarks.WriteTable(stdout, []benchmarks.Result{res})
}

// runCompare runs the matrix and writes its report.
func runCompare(ctx context.Context, base benchmarks.Config, out string, asJSON bool, stdout, stderr io.Writer) error {
	opts := benchmarks.CompareOptions{Base: base}
	opts.OnPeerSkipped = func(peer string, reason error) {
		fmt.Fprintf(stderr, "bench --compare: skipping %s: %v\n", peer, reason)
	}
	if base.Progress != nil {
		opts.OnResult = func(r benchmarks.Result) {
			_ = benchmarks.WriteTable(base.Progress, []benchmarks.Result{r})
		}
	}
	results, err := benchmarks.Compare(ctx, opts)
	if len(results) > 0 {
		paths, werr := benchmarks.WriteReport(out, results)
		if werr != nil {
			return werr
		}
		fmt.Fprintf(stderr, "wrote %s\n", strings.Join(paths, ", "))
		if asJSON {
			if werr := benchmarks.WriteJSON(stdout, results); werr != nil {
				return werr
			}
		} else if werr := benchmarks.WriteTable(stdout, results); werr != nil {
			return werr
		}
	}
	return err
}

// checkPeerFlags refuses --peer with flags that choose pbftnode's own
// configuration (--protocol, --app) or with --compare (which runs the
// peers it finds by itself).
func checkPeerFlags(fs *flag.FlagSet, peer string, compare bool) error {
	if peer == "" {
		return nil
	}
	if compare {
		return fmt.Errorf("%w: --compare runs the peers it finds by itself; drop --peer", errUsage)
	}
	var clash []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "protocol" || f.Name == "app" {
			clash = append(clash, "--"+f.Name)
		}
	})
	if len(clash) > 0 {
		return fmt.Errorf("%w: --peer %s measures %s, not pbftnode: drop %s", errUsage, peer, peer, strings.Join(clash, " and "))
	}
	return nil
}
