package main

import (
	"context"
	"encoding/json"
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
)

// attackReadyLine is what `pbftnode attack` prints on its own line of
// stdout once the attack is prepared; the report follows when it ends.
const attackReadyLine = "ready"

// runAttack is `pbftnode attack`: a TESTING INSTRUMENT that plays one
// faulty client of issue 15 against a testnet (see benchmarks.AttackKinds).
// It prepares the attack, prints attackReadyLine, attacks (with
// --start-on-signal only after SIGUSR1) until SIGTERM or SIGINT or
// --duration, and then prints what it did as one JSON object.
func runAttack(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("attack", flag.ContinueOnError)
	var cfg benchmarks.AttackConfig
	fs.StringVar(&cfg.Dir, "dir", "", "testnet directory (client.json, client.key); required")
	fs.StringVar(&cfg.Kind, "kind", "", "attack: "+strings.Join(benchmarks.AttackKinds, ", "))
	fs.Float64Var(&cfg.Rate, "rate", 0, "rate bound in the kind's unit: big-burst bursts/s (0.2), client-flood sessions/s (1000), garbage-client frames/s (100000), slowloris bytes/s (32 MiB), non-reading-client frames/s (1000); 0: the default")
	fs.IntVar(&cfg.Target, "target", 0, "replica that big-burst and slowloris aim at (default 0, the primary of view 0)")
	duration := fs.Duration("duration", 0, "stop after this long (0: at SIGTERM or SIGINT)")
	onSignal := fs.Bool("start-on-signal", false, "prepare, print \""+attackReadyLine+"\", and start only on SIGUSR1 (as pbftnode bench runs it)")
	logs := addLogFlags(fs, "warn")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pbftnode attack --dir TESTNET --kind KIND [flags]\n\nTESTING INSTRUMENT: attacks a testnet's replicas as one faulty client.")
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	case cfg.Dir == "":
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	// Signals are registered before anything is prepared, so that a
	// SIGUSR1 sent right after the ready line is never lost.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if *onSignal {
		start := make(chan struct{})
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		go func() {
			select {
			case <-usr1:
				close(start)
			case <-ctx.Done():
			}
		}()
		cfg.Start = start
	}
	// Ready runs on RunAttack's goroutine, so the ready line always
	// comes before the report.
	cfg.Ready = func() { fmt.Fprintln(stdout, attackReadyLine) }
	began := time.Now()
	rep, err := benchmarks.RunAttack(ctx, cfg)
	if errors.Is(err, benchmarks.ErrAttackConfig) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	logger.Info("attack ended", "kind", cfg.Kind, "after", time.Since(began), "frames", rep.Frames, "err", err)
	if jerr := json.NewEncoder(stdout).Encode(rep); jerr != nil {
		return errors.Join(err, fmt.Errorf("write the report: %w", jerr))
	}
	return err
}
