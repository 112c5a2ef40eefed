package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode/internal/raftsim"
	"github.com/pbftnode/pbftnode/internal/sim"
)

func runSim(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	protocol := fs.String("protocol", "pbft", "protocol to simulate: pbft or raft")
	scenario := fs.String("scenario", "", "raft only: a dedicated scenario instead of random faults ("+strings.Join(raftsim.Scenarios[1:], ", ")+")")
	plainWipes := fs.Bool("plain-wipes", false, "raft only: random wipes leave the leader running (see docs/testing.md)")
	reconfigure := fs.Bool("reconfigure", false, "configuration changes among the workload (pbft: add spares, remove a member, rotate a key; raft: add two spares, rotate a key, remove a first member), under the random faults")
	seeds := fs.Uint64("seeds", 100, "number of seeds to run")
	start := fs.Uint64("start", 1, "first seed")
	replicas := fs.Int("replicas", 4, "replicas per run (pbft: 4 or 7; raft: 3 or 5, default 3)")
	byz := fs.Int("byzantine", 0, "Byzantine replicas per run (at most f)")
	strategy := fs.String("strategy", "", "pbft only: the strategy every Byzantine replica runs ("+strings.Join(sim.AllStrategies(), ", ")+"); default: each seed draws one")
	plant := fs.String("plant", "", "TESTING ONLY: plant a bug (pbft: an unsafe quorum in the correct replicas, or in the clients for tentative-quorum: "+strings.Join(sim.Plants, ", ")+"; raft: "+strings.Join(raftsim.Plants, ", ")+")")
	app := fs.String("app", "kv", "the application the replicas run: kv (the key-value store) or ledger (the built-in ledger: its invariants checked after every batch)")
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
	out := simOutput{stdout: stdout, stderr: stderr, json: *jsonOut, verbose: *verbose, timing: *timing}
	if *app != "kv" && *app != "ledger" {
		return fmt.Errorf("%w: --app %q: want kv or ledger", errUsage, *app)
	}
	ledger := *app == "ledger"
	switch *protocol {
	case "pbft":
		if *scenario != "" || *plainWipes {
			return fmt.Errorf("%w: --scenario and --plain-wipes are for --protocol raft", errUsage)
		}
	case "raft":
		if *byz != 0 || *strategy != "" {
			return fmt.Errorf("%w: the Raft mode tolerates crash faults only (--byzantine 0)", errUsage)
		}
		rcfg := raftsim.Config{Replicas: *replicas, Plant: *plant, Scenario: *scenario, PlainWipes: *plainWipes,
			Reconfigure: *reconfigure, Ledger: ledger, MaxSteps: *steps, Logger: logger, Verbose: *verbose}
		if !flagSet(fs, "replicas") {
			rcfg.Replicas = 3
		}
		if !flagSet(fs, "steps") {
			rcfg.MaxSteps = raftsim.DefaultMaxSteps
		}
		return runRaftSim(rcfg, *start, *seeds, *workers, out)
	default:
		return fmt.Errorf("%w: --protocol %q: want pbft or raft", errUsage, *protocol)
	}
	cfg := sim.Config{Replicas: *replicas, Byzantine: *byz, Strategy: *strategy, Plant: *plant, Ledger: ledger,
		Reconfigure: *reconfigure, MaxSteps: *steps, Logger: logger, Verbose: *verbose}
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
		fmt.Fprintf(stdout, "runs=%d steps=%d ticks=%d view_changes=%d checkpoints=%d state_transfers=%d crashes=%d torn_crashes=%d lost_log_entries=%d partitions=%d messages=%d dropped=%d rejected_frames=%d byzantine_actions=%d committed_requests=%d operations=%d violations=%d\n",
			sum.Runs, sum.Steps, sum.Ticks, sum.ViewChanges, sum.Checkpoints, sum.StateTransfers, sum.Crashes, sum.TornCrashes, sum.LostLogEntries, sum.Partitions, sum.Messages,
			sum.Dropped, sum.RejectedFrames, sum.ByzantineActions, sum.CommittedRequests, sum.Operations, sum.Violations)
	}
	if sum.Violations > 0 {
		return fmt.Errorf("%d violations in %d runs (seeds %v)", sum.Violations, sum.Runs, sum.FailedSeeds)
	}
	return nil
}

func replayCommand(cfg sim.Config, seed uint64) string {
	s := fmt.Sprintf("pbftnode sim --seeds 1 --start %d --replicas %d --byzantine %d", seed, cfg.Replicas, cfg.Byzantine)
	if cfg.Strategy != "" {
		s += " --strategy " + cfg.Strategy
	}
	if cfg.Plant != "" {
		s += " --plant " + cfg.Plant
	}
	if cfg.Ledger {
		s += " --app ledger"
	}
	if cfg.Reconfigure {
		s += " --reconfigure"
	}
	if cfg.MaxSteps != sim.DefaultMaxSteps {
		s += fmt.Sprintf(" --steps %d", cfg.MaxSteps)
	}
	return s + " -v"
}

// simOutput is how runSim prints.
type simOutput struct {
	stdout, stderr        io.Writer
	json, verbose, timing bool
}

// flagSet reports whether the command line set flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runRaftSim is runSim for --protocol raft (internal/raftsim), in the same
// output style.
func runRaftSim(cfg raftsim.Config, start, seeds uint64, workers int, out simOutput) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	began := time.Now()
	results := raftsim.RunMany(cfg, start, seeds, workers)
	var sum raftsim.Summary
	for _, r := range results {
		sum.Add(r)
		if out.verbose && !out.json {
			fmt.Fprintf(out.stdout, "seed %d: steps=%d ticks=%d elections=%d snapshots=%d transfers=%d crashes=%d wipes=%d ops=%d violations=%d | %s\n",
				r.Seed, r.Steps, r.Ticks, r.Elections, r.Snapshots, r.StateTransfers, r.Crashes, r.Wipes, r.Operations, len(r.Violations), r.Scenario)
		}
		if len(r.Violations) > 0 && !out.json {
			for _, v := range r.Violations {
				fmt.Fprintf(out.stdout, "VIOLATION %s\n  scenario: %s\n  replay: %s\n", v, r.Scenario, raftReplayCommand(cfg, r.Seed))
			}
		}
	}
	if out.timing {
		fmt.Fprintf(out.stderr, "sim: %d runs in %s\n", sum.Runs, time.Since(began).Round(time.Millisecond))
	}
	if out.json {
		b, err := json.Marshal(sum)
		if err != nil {
			return fmt.Errorf("sim: summary: %w", err)
		}
		fmt.Fprintln(out.stdout, string(b))
	} else {
		fmt.Fprintf(out.stdout, "runs=%d steps=%d ticks=%d elections=%d snapshots=%d state_transfers=%d crashes=%d wipes=%d waiting_restarts=%d partitions=%d messages=%d dropped=%d committed_requests=%d operations=%d violations=%d\n",
			sum.Runs, sum.Steps, sum.Ticks, sum.Elections, sum.Snapshots, sum.StateTransfers, sum.Crashes, sum.Wipes, sum.WaitingRestarts,
			sum.Partitions, sum.Messages, sum.Dropped, sum.CommittedRequests, sum.Operations, sum.Violations)
	}
	if cfg.Reconfigure && !out.json {
		fmt.Fprintf(out.stdout, "config_changes=%d joint_entered=%d joint_left=%d joint_crashes=%d\n", sum.ConfigChanges, sum.JointEntered, sum.JointLeft, sum.JointCrashes)
	}
	if sum.Violations > 0 {
		return fmt.Errorf("%d violations in %d runs (seeds %v)", sum.Violations, sum.Runs, sum.FailedSeeds)
	}
	return nil
}

func raftReplayCommand(cfg raftsim.Config, seed uint64) string {
	s := fmt.Sprintf("pbftnode sim --protocol raft --seeds 1 --start %d --replicas %d", seed, cfg.Replicas)
	if cfg.Scenario != "" {
		s += " --scenario " + cfg.Scenario
	}
	if cfg.PlainWipes {
		s += " --plain-wipes"
	}
	if cfg.Reconfigure {
		s += " --reconfigure"
	}
	if cfg.Plant != "" {
		s += " --plant " + cfg.Plant
	}
	if cfg.Ledger {
		s += " --app ledger"
	}
	if cfg.MaxSteps != raftsim.DefaultMaxSteps {
		s += fmt.Sprintf(" --steps %d", cfg.MaxSteps)
	}
	return s + " -v"
}
