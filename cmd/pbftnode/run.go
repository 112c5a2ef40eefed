package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/node"
	floornode "github.com/pbftnode/pbftnode/node/floor"
	"github.com/pbftnode/pbftnode/node/launch"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
)

func runReplica(args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	home := fs.String("home", "", "the replica's home directory, holding config.json (required)")
	strategy := fs.String("byzantine", "", "FAULT INJECTION: make this replica misbehave on purpose ("+strings.Join(byzantine.Strategies, ", ")+"); for testing only")
	rate := fs.Float64("byzantine-rate", byzantine.DefaultRate, "FAULT INJECTION: the flood strategies' rate, frames per second to all other replicas together")
	toggle := fs.Bool("byzantine-toggle", false, "FAULT INJECTION: start the --byzantine strategy inactive; SIGUSR1 activates it, SIGUSR2 deactivates it")
	settings := config.RegisterFlags(fs) // one flag per config.json setting, e.g. --unsafe-no-fsync
	logs := addLogFlags(fs, "info")
	floor := fs.Bool("benchmark-floor", false, "BENCHMARK ONLY: instead of PBFT, verify and answer requests without ordering, persisting or executing them (the transport-and-signature floor that bench --protocol floor measures); gives no guarantee")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the replica's whole run to this file (for go tool pprof)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *home == "" {
		return fmt.Errorf("%w: --home is required", errUsage)
	}
	if err := checkByzantineFlags(*strategy, *rate, *toggle); err != nil {
		return err
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	h, cfg, err := launch.LoadReplica(*home, settings, logger)
	if err != nil {
		return err
	}
	applyRuntimeSettings(h.File, logger)
	if *strategy != "" && cfg.Consensus == config.ConsensusRaft {
		return fmt.Errorf("%w: --byzantine applies to PBFT only (the Raft mode tolerates crash faults only)", errUsage)
	}
	if *floor && (cfg.Consensus == config.ConsensusRaft || *strategy != "") {
		return fmt.Errorf("%w: --benchmark-floor runs on a PBFT configuration, without --byzantine", errUsage)
	}
	var byz *byzantine.Filter
	var filter pbft.Filter // nil (not a nil *byzantine.Filter) for a correct replica
	if *strategy != "" {
		if byz, err = newByzantine(cfg, *strategy, *rate, *toggle); err != nil {
			return err
		}
		filter = byz
		logger.Warn("FAULT INJECTION: this replica is Byzantine on purpose", "strategy", *strategy, "active", byz.Active(), "rate_frames_per_second", *rate)
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
		n, err = floornode.Start(cfg)
	} else {
		n, err = launch.Start(cfg, filter)
	}
	if err != nil {
		return err
	}
	if *toggle {
		stopToggle := toggleOnSignals(byz, logger)
		defer stopToggle()
	}
	logger.Info("replica running", "protocol", protocolName(cfg.Consensus), "application", h.Application.String(), "index", cfg.Index, "listen", n.Addrs(), "metrics", n.MetricsAddr(), "replicas", len(cfg.Replicas))
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
		return config.ConsensusPBFT
	}
	return consensus
}

// checkByzantineFlags rejects --byzantine-toggle without a strategy and
// a rate that is not positive.
func checkByzantineFlags(strategy string, rate float64, toggle bool) error {
	if toggle && strategy == "" {
		return fmt.Errorf("%w: --byzantine-toggle needs --byzantine", errUsage)
	}
	if rate <= 0 {
		return fmt.Errorf("%w: --byzantine-rate must be positive", errUsage)
	}
	return nil
}

// newByzantine builds a --byzantine strategy for cfg's replica: the flood
// rate converted to frames per tick, slow-primary's delay 90% of the
// configured view-change timeout, inactive when toggled by signals.
func newByzantine(cfg node.Config, strategy string, rate float64, toggle bool) (*byzantine.Filter, error) {
	tick := cfg.TickInterval
	if tick <= 0 {
		tick = node.DefaultTickInterval
	}
	timeout := cfg.PBFT.ViewChangeTimeoutTicks
	if timeout <= 0 {
		timeout = protocol.DefaultViewChangeTimeoutTicks
	}
	opts := byzantine.Options{
		FramesPerTick: rate * tick.Seconds(),
		DelayTicks:    byzantine.SlowPrimaryDelayTicks(timeout),
		Inactive:      toggle,
	}
	f, err := byzantine.NewWithOptions(strategy, cfg.Index, len(cfg.Replicas), cfg.Key, cfg.ClusterID, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return f, nil
}

// toggleOnSignals switches f on at each SIGUSR1 and off at each SIGUSR2,
// logging each switch, until the returned stop is called.
func toggleOnSignals(f *byzantine.Filter, logger *slog.Logger) (stop func()) {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-signals:
				on := sig == syscall.SIGUSR1
				changed := f.SetActive(on)
				logger.Warn("FAULT INJECTION: strategy switched", "strategy", f.Strategy(), "active", on, "changed", changed,
					"actions", f.Actions())
			}
		}
	}()
	return func() {
		signal.Stop(signals)
		close(done)
	}
}
