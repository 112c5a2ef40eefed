package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/pbftnode/pbftnode/byzantine"

	"github.com/pbftnode/pbftnode/node"
)

func runReplica(args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	home := fs.String("home", "", "the replica's home directory, holding config.json (required)")
	strategy := fs.String("byzantine", "", "FAULT INJECTION: make this replica misbehave on purpose ("+strings.Join(byzantine.Strategies, ", ")+"); for testing only")
	settings := node.RegisterConfigFlags(fs) // one flag per config.json setting, e.g. --unsafe-no-fsync
	logs := addLogFlags(fs, "info")
	floor := fs.Bool("benchmark-floor", false, "BENCHMARK ONLY: instead of PBFT, verify and answer requests without ordering, persisting or executing them (the transport-and-signature floor that bench --protocol floor measures); gives no guarantee")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the replica's whole run to this file (for go tool pprof)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *home == "" {
		return fmt.Errorf("%w: --home is required", errUsage)
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := node.LoadHomeWith(*home, settings)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	if *strategy != "" && cfg.Consensus == node.ProtocolRaft {
		return fmt.Errorf("%w: --byzantine applies to PBFT only (the Raft mode tolerates crash faults only)", errUsage)
	}
	if *floor && (cfg.Consensus == node.ProtocolRaft || *strategy != "") {
		return fmt.Errorf("%w: --benchmark-floor runs on a PBFT configuration, without --byzantine", errUsage)
	}
	if *strategy != "" {
		f, err := byzantine.New(*strategy, cfg.Index, len(cfg.Replicas), cfg.Key, cfg.ClusterID)
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		cfg.Filter = f
		logger.Warn("FAULT INJECTION: this replica is Byzantine on purpose", "strategy", *strategy)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var n node.Runner
	if *floor {
		n, err = node.StartFloor(cfg)
	} else {
		n, err = node.Launch(cfg)
	}
	if err != nil {
		return err
	}
	logger.Info("replica running", "protocol", protocolName(cfg.Consensus), "index", cfg.Index, "listen", n.Addrs(), "metrics", n.MetricsAddr(), "replicas", len(cfg.Replicas))
	<-ctx.Done()
	logger.Info("shutting down")
	if err := n.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	st := n.Status()
	logger.Info("stopped", "executed_sequence", st.ExecutedSequence, "view", st.View)
	return nil
}

func protocolName(consensus string) string {
	if consensus == "" {
		return node.ProtocolPBFT
	}
	return consensus
}
