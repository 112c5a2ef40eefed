package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/pbftnode/pbftnode"
)

// workload is what a run does: the protocol, how many clients and how
// many rounds of operations each sends, and whether the last replica is
// restarted halfway with its application's memory lost.
type workload struct {
	protocol string
	clients  int
	rounds   int
	restart  bool
}

func main() {
	protocol := flag.String("protocol", pbftnode.PBFT, "pbft (four PBFT replicas) or raft (three Raft replicas)")
	clients := flag.Int("clients", 4, "clients, running concurrently")
	rounds := flag.Int("rounds", 20, "rounds per client; each sends two operations at once")
	restart := flag.Bool("restart", true, "halfway, restart the last replica with a fresh (empty) application: the replica restores it")
	verbose := flag.Bool("v", false, "log what the replicas do on stderr")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	err := run(ctx, workload{protocol: *protocol, clients: *clients, rounds: *rounds, restart: *restart}, os.Stdout, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "embedded: FAILED: %v\n", err)
		os.Exit(1)
	}
}

// run starts a cluster of counters replicas in a temporary directory,
// runs the workload against it and checks that every replica agrees,
// printing what it checked on out. Any disagreement is an error.
func run(ctx context.Context, w workload, out io.Writer, logger *slog.Logger) (err error) {
	n := 4
	switch w.protocol {
	case pbftnode.PBFT:
	case pbftnode.Raft:
		n = 3
	default:
		return fmt.Errorf("unknown protocol %q: want %s or %s", w.protocol, pbftnode.PBFT, pbftnode.Raft)
	}
	if w.clients < 1 || w.rounds < 1 {
		return errors.New("need at least one client and one round")
	}
	dir, err := os.MkdirTemp("", "pbftnode-embedded-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, err := pbftnode.FreeBasePort("127.0.0.1", n)
	if err != nil {
		return err
	}
	if err := pbftnode.WriteTestnet(pbftnode.Testnet{Dir: dir, Replicas: n, Consensus: w.protocol, BasePort: base}); err != nil {
		return err
	}
	c, err := startCluster(dir, n, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.close()) }()
	fmt.Fprintf(out, "started %d %s replicas of the counters application on 127.0.0.1:%d-%d (fsync on), data in %s\n", n, w.protocol, base, base+n-1, dir)

	start := time.Now()
	expected, err := runWorkload(ctx, dir, w, c, out, logger)
	if err != nil {
		return err
	}
	reads := 1 // each client reads its counter after each phase
	if w.restart {
		reads = 2
	}
	fmt.Fprintf(out, "%d clients sent %d operations (2 at once per client) in %v: every result was the one expected\n",
		w.clients, w.clients*(2*w.rounds+reads), time.Since(start).Round(time.Millisecond))

	st, err := c.waitAgreement(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "all %d replicas executed up to sequence %d with status digest %x\n", n, st.ExecutedSequence, st.StateDigest[:8])
	if err := c.checkApplications(ctx, st.ExecutedSequence, expected); err != nil {
		return err
	}
	fmt.Fprintf(out, "all %d applications are at sequence %d and hold the same %d counters, as the clients' results say (shared=%d)\n",
		n, st.ExecutedSequence, len(expected), expected[sharedCounter])
	fmt.Fprintln(out, "OK: the replicas agree")
	return nil
}

// runWorkload runs the clients' rounds (runClients), restarting the last
// replica with a fresh application between the two halves if w.restart,
// and returns the counters the replicas must hold.
func runWorkload(ctx context.Context, dir string, w workload, c *cluster, out io.Writer, logger *slog.Logger) (map[string]int64, error) {
	half := w.rounds
	if w.restart {
		half = w.rounds / 2
	}
	shared, err := runClients(ctx, dir, w.clients, 1, half)
	if err != nil {
		return nil, err
	}
	if w.restart {
		last := len(c.replicas) - 1
		if err := c.restart(dir, last, logger); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "replica %d restarted after round %d with an empty application (its memory lost): the replica restores it\n", last, half)
		more, err := runClients(ctx, dir, w.clients, half+1, w.rounds)
		if err != nil {
			return nil, err
		}
		shared = append(shared, more...)
	}
	return expectedCounters(w, shared)
}
