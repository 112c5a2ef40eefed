package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/pbftnode/pbftnode/config"
)

// errInvalidConfig marks a configuration with problems (exit status 1; the
// problems were already printed).
var errInvalidConfig = errors.New("configuration is invalid")

func runConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: pbftnode config validate --home DIR")
		if len(args) == 0 {
			return fmt.Errorf("%w: missing subcommand", errUsage)
		}
		return flag.ErrHelp
	}
	if args[0] != "validate" {
		return fmt.Errorf("%w: unknown subcommand %q (validate)", errUsage, args[0])
	}
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	home := fs.String("home", "", "the replica's home directory, holding config.json (required)")
	if err := parse(fs, args[1:], stderr); err != nil {
		return err
	}
	if *home == "" {
		return fmt.Errorf("%w: --home is required", errUsage)
	}
	h, err := config.Load(*home, nil)
	for _, w := range h.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		problems := []error{err}
		if invalid, ok := errors.AsType[*config.InvalidError](err); ok {
			problems = invalid.Problems
		}
		fmt.Fprintf(stdout, "%s: %d problem(s):\n", filepath.Join(*home, config.FileName), len(problems))
		for _, p := range problems {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
		return errInvalidConfig
	}
	fmt.Fprintln(stdout, "ok")
	for _, line := range h.Summary() {
		fmt.Fprintf(stdout, "  %s\n", line)
	}
	return nil
}
