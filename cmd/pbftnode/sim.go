package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode/internal/sim"
)

func runSim(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	seeds := fs.Uint64("seeds", 100, "number of seeds to run")
	start := fs.Uint64("start", 1, "first seed")
	replicas := fs.Int("replicas", 4, "replicas per run (4 or 7)")
	byz := fs.Int("byzantine", 0, "Byzantine replicas per run (at most f)")
	plant := fs.String("plant", "", "TESTING ONLY: plant an unsafe quorum in the correct replicas ("+strings.Join(sim.Plants, ", ")+")")
	steps := fs.Uint64("steps", sim.DefaultMaxSteps, "step limit per run")
	workers := fs.Int("workers", 0, "seeds run in parallel (0: GOMAXPROCS)")
	jsonOut := fs.Bool("json", false, "print the summary as one JSON object (the last line)")
	verbose := fs.Bool("v", false, "print every run's scenario and counters")
	timing := fs.Bool("time", false, "also print the wall-clock duration (to stderr; output stays reproducible)")
	logs := addLogFlags(fs, "warn")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	cfg := sim.Config{Replicas: *replicas, Byzantine: *byz, Plant: *plant, MaxSteps: *steps, Logger: logger, Verbose: *verbose}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	began := time.Now()
	results := sim.RunMany(cfg, *start, *seeds, *workers)
	var sum sim.Summary
	for _, r := range results {
		sum.Add(r)
		if *verbose && !*jsonOut {
			fmt.Fprintf(stdout, "seed %d: steps=%d ticks=%d view_changes=%d checkpoints=%d transfers=%d crashes=%d ops=%d violations=%d | %s\n",
				r.Seed, r.Steps, r.Ticks, r.ViewChanges, r.Checkpoints, r.StateTransfers, r.Crashes, r.Operations, len(r.Violations), r.Scenario)
		}
		if len(r.Violations) > 0 && !*jsonOut {
			for _, v := range r.Violations {
				fmt.Fprintf(stdout, "VIOLATION %s\n  scenario: %s\n  replay: %s\n", v, r.Scenario, replayCommand(cfg, r.Seed))
			}
		}
	}
	if *timing {
		fmt.Fprintf(stderr, "sim: %d runs in %s\n", sum.Runs, time.Since(began).Round(time.Millisecond))
	}
	if *jsonOut {
		b, err := json.Marshal(sum)
		if err != nil {
			return fmt.Errorf("sim: summary: %w", err)
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "runs=%d steps=%d ticks=%d view_changes=%d checkpoints=%d state_transfers=%d crashes=%d partitions=%d messages=%d dropped=%d rejected_frames=%d byzantine_actions=%d committed_requests=%d operations=%d violations=%d\n",
			sum.Runs, sum.Steps, sum.Ticks, sum.ViewChanges, sum.Checkpoints, sum.StateTransfers, sum.Crashes, sum.Partitions, sum.Messages,
			sum.Dropped, sum.RejectedFrames, sum.ByzantineActions, sum.CommittedRequests, sum.Operations, sum.Violations)
	}
	if sum.Violations > 0 {
		return fmt.Errorf("%d violations in %d runs (seeds %v)", sum.Violations, sum.Runs, sum.FailedSeeds)
	}
	return nil
}

func replayCommand(cfg sim.Config, seed uint64) string {
	s := fmt.Sprintf("pbftnode sim --seeds 1 --start %d --replicas %d --byzantine %d", seed, cfg.Replicas, cfg.Byzantine)
	if cfg.Plant != "" {
		s += " --plant " + cfg.Plant
	}
	if cfg.MaxSteps != sim.DefaultMaxSteps {
		s += fmt.Sprintf(" --steps %d", cfg.MaxSteps)
	}
	return s + " -v"
}
