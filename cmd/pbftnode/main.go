package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/pbftnode/pbftnode/client"
)

// errUsage marks a command-line mistake and errConfig a configuration
// file that cannot be used (exit status 2 for both).
var (
	errUsage  = errors.New("usage")
	errConfig = errors.New("configuration")
)

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "start 4 replicas in this process, run concurrent clients, print a summary", runDemo},
		{"testnet", "write keys and configuration for a local multi-process cluster", runTestnet},
		{"run", "run one replica from its home directory until SIGINT/SIGTERM", runReplica},
		{"client", "send one operation (put, get, delete, cas; ledger mint, transfer, balance, history) through consensus", runClient},
		{"gateway", "serve an HTTP/JSON API (key-value store or ledger, with receipts) as one client of a cluster", runGateway},
		{"verify-receipt", "check a receipt (pbftnode client --receipt) against a cluster file, offline", runVerifyReceipt},
		{"sim", "run seeded deterministic simulations of the protocol and check them", runSim},
		{"keygen", "generate a replica or client key file (optionally encrypted) and print its public key", runKeygen},
		{"status", "ask a running replica for its view, executed sequence, checkpoint, peers, epoch and members", runStatus},
		{"admin", "membership: members, add-replica --home HOME, remove-replica INDEX, rotate-key INDEX --key FILE", runAdmin},
		{"config", "config validate --home DIR: check a replica's configuration and key", runConfig},
		{"bench", "benchmark PBFT against Raft on local replica processes (--compare: the full matrix, table, JSON, plots)", runBench},
		{"attack", "TESTING INSTRUMENT: attack a testnet as one faulty client (bench's attack scenarios run it)", runAttack},
	}
}

func main() {
	os.Exit(mainWithArgs(os.Args[1:], os.Stdout, os.Stderr))
}

func mainWithArgs(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		code := exitStatus(err)
		if code != 0 {
			fmt.Fprintf(stderr, "pbftnode %s: %v\n", c.name, err)
		}
		return code
	}
	fmt.Fprintf(stderr, "pbftnode: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// exitStatus maps a command's error to the process's exit status: 0
// success or help; 2 a usage or configuration error; for the client and
// admin, 3 outcome unknown and 4 refused (see clientUsage, adminUsage); 1
// anything else.
func exitStatus(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, client.ErrUnknownOutcome):
		return 3
	case errors.Is(err, client.ErrRefused):
		return 4
	case errors.Is(err, errUsage), errors.Is(err, errConfig):
		return 2
	}
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pbftnode COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'pbftnode COMMAND -h' for a command's flags.")
}

// logFlags adds --log-level and --log-format to fs.
type logFlags struct{ level, format *string }

func addLogFlags(fs *flag.FlagSet, defaultLevel string) logFlags {
	return logFlags{
		level:  fs.String("log-level", defaultLevel, "log level: debug, info, warn, error"),
		format: fs.String("log-format", "text", "log format: text or json"),
	}
}

func (l logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*l.level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q", errUsage, *l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(*l.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q", errUsage, *l.format)
}

// parse parses flags, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}
