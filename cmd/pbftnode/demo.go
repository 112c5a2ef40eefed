package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/pbft"
)

// demoFaults describes the fault a demo injects.
type demoFaults struct {
	crashPrimary bool
	strategy     string
	liar         int // the Byzantine replica, or -1
	// victim is the replica crashPrimary stops: the primary (0) for
	// PBFT, the current leader for Raft (chosen when the crash happens).
	victim int
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	proto := fs.String("protocol", config.ConsensusPBFT, "consensus protocol: pbft (n = 3f+1) or raft (n = 2f+1, crash faults only)")
	replicas := fs.Int("replicas", 0, "number of replicas (default 4 for PBFT, 3 for Raft)")
	clients := fs.Int("clients", 4, "number of clients")
	workers := fs.Int("workers", 8, "concurrent operations per client")
	duration := fs.Duration("duration", 5*time.Second, "how long the clients run")
	noFsync := fs.Bool("unsafe-no-fsync", false, "turn fsync off")
	seed := fs.Uint64("seed", 1, "seed of the workload's key choice")
	crash := fs.Bool("crash-primary", false, "stop the primary (the leader, for Raft) a third of the way in; the summary shows the view change")
	strategy := fs.String("byzantine", "", "make one replica Byzantine: "+strings.Join(byzantine.Strategies, ", ")+
		" (replica 0, the first primary; for bad-new-view replica 1, and the primary is stopped for a while so that replica 1 must lead)")
	logs := addLogFlags(fs, "warn")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	raft := *proto == config.ConsensusRaft
	switch {
	case *proto != config.ConsensusPBFT && !raft:
		return fmt.Errorf("%w: --protocol %q: want pbft or raft", errUsage, *proto)
	case raft && *strategy != "":
		return fmt.Errorf("%w: --byzantine applies to PBFT only (the Raft mode tolerates crash faults only)", errUsage)
	}
	if *replicas == 0 {
		*replicas = 4
		if raft {
			*replicas = 3
		}
	}
	minReplicas := 4
	if raft {
		minReplicas = 1
	}
	if *replicas < minReplicas || *clients < 1 || *workers < 1 || *duration <= 0 {
		return fmt.Errorf("%w: need at least %d replicas, 1 client, 1 worker and a positive duration", errUsage, minReplicas)
	}
	faults := demoFaults{crashPrimary: *crash, strategy: *strategy, liar: -1}
	if *strategy != "" {
		if !slices.Contains(byzantine.Strategies, *strategy) {
			return fmt.Errorf("%w: unknown --byzantine strategy %q", errUsage, *strategy)
		}
		faults.liar = 0
		if *strategy == "bad-new-view" {
			faults.liar = 1
		}
		if *crash && faults.liar != 0 {
			return fmt.Errorf("%w: --crash-primary with a Byzantine backup is two faults; n=4 tolerates one", errUsage)
		}
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	var liar *byzantine.Filter
	fmt.Fprintf(stdout, "starting %d %s replicas on 127.0.0.1 (libp2p, fsync %v)\n", *replicas, *proto, !*noFsync)
	net, err := localnet.Start(localnet.Options{
		Replicas: *replicas, NoSync: *noFsync, Logger: logger, Consensus: *proto,
		FilterFactory: func(i int, key ed25519.PrivateKey, cluster string) pbft.Filter {
			if i != faults.liar {
				return nil
			}
			liar, _ = byzantine.New(faults.strategy, uint32(i), *replicas, key, cluster)
			return liar
		},
	})
	if err != nil {
		return err
	}
	defer net.Close()
	if liar != nil {
		fmt.Fprintf(stdout, "replica %d is Byzantine: %s\n", faults.liar, faults.strategy)
	}

	fmt.Fprintf(stdout, "running %d clients x %d concurrent operations for %s\n", *clients, *workers, *duration)
	res, err := runDemoLoad(net, *clients, *workers, *duration, *seed, faults, stdout)
	if err != nil {
		return err
	}
	if len(res.latencies) == 0 {
		return fmt.Errorf("no operation committed in %s", res.elapsed)
	}
	lat := res.latencies
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Fprintf(stdout, "ops committed: %d (%d failed)\n", len(lat), res.failures)
	fmt.Fprintf(stdout, "throughput:    %.0f ops/s\n", float64(len(lat))/res.elapsed.Seconds())
	fmt.Fprintf(stdout, "latency:       p50 %s  p99 %s\n", pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond))
	if res.crashed {
		fmt.Fprintf(stdout, "%-15sfirst commit %s after replica %d stopped\n", orderingRole(raft)+" crash:", res.recovery.Round(time.Millisecond), res.victim)
	}
	exclude := faults.liar
	digest, seq, err := convergedDigest(net, exclude, 20*time.Second)
	if err != nil {
		return err
	}
	var views []string
	word := "view"
	if raft {
		word = "term"
	}
	for i := range net.Replicas {
		if n := net.Replica(i); n != nil {
			st := n.Status()
			views = append(views, fmt.Sprintf("%d:%s %d", i, word, st.View))
		}
	}
	fmt.Fprintf(stdout, "%-15s%s\n", word+"s:", strings.Join(views, ", "))
	if liar != nil {
		fmt.Fprintf(stdout, "fault:         replica %d injected %d faults (%s); clients saw only results f+1 replicas agreed on\n", faults.liar, liar.Actions(), faults.strategy)
	}
	executed := "executed sequence"
	if raft {
		executed = "applied index"
	}
	fmt.Fprintf(stdout, "state digest:  %s on every correct replica (%s %d)\n", hex.EncodeToString(digest[:8]), executed, seq)
	return nil
}

// orderingRole names the replica that orders requests: the PBFT primary
// or the Raft leader.
func orderingRole(raft bool) string {
	if raft {
		return "leader"
	}
	return "primary"
}

type demoResult struct {
	latencies []time.Duration
	failures  int
	elapsed   time.Duration
	crashed   bool
	victim    int
	recovery  time.Duration
}

func runDemoLoad(net *localnet.Net, clients, workers int, duration time.Duration, seed uint64, faults demoFaults, stdout io.Writer) (*demoResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var (
		mu        sync.Mutex
		res       = &demoResult{}
		crashedAt time.Time
		wg        sync.WaitGroup
	)
	start := time.Now()
	for ci := range clients {
		c, err := net.NewClient(300 * time.Millisecond)
		if err != nil {
			return nil, err
		}
		for w := range workers {
			rng := rand.New(rand.NewPCG(seed, uint64(ci*1000+w)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					key := []byte(fmt.Sprintf("key-%d", rng.IntN(1000)))
					op := execution.EncodeGet(key)
					if rng.IntN(2) == 0 {
						op = execution.EncodePut(key, []byte(fmt.Sprintf("value-%d", rng.Uint32())))
					}
					t0 := time.Now()
					_, err := c.Invoke(ctx, op)
					done := time.Now()
					mu.Lock()
					if err == nil {
						res.latencies = append(res.latencies, done.Sub(t0))
						if !crashedAt.IsZero() && res.recovery == 0 && t0.After(crashedAt) {
							res.recovery = done.Sub(crashedAt)
						}
					} else if ctx.Err() == nil {
						res.failures++
					}
					mu.Unlock()
				}
			}()
		}
	}
	if faults.crashPrimary || faults.strategy == "bad-new-view" {
		select {
		case <-time.After(duration / 3):
		case <-ctx.Done():
		}
		victim := 0
		if net.IsRaft() {
			victim = currentLeader(net)
		}
		mu.Lock()
		crashedAt = time.Now()
		mu.Unlock()
		if err := net.StopReplica(victim); err != nil {
			return nil, err
		}
		res.crashed, res.victim = true, victim
		fmt.Fprintf(stdout, "stopped replica %d, the %s\n", victim, orderingRole(net.IsRaft()))
		if faults.strategy == "bad-new-view" {
			// With replica 1 lying, view 1 cannot start; bring replica 0
			// back so that view 2 can.
			select {
			case <-time.After(duration / 3):
			case <-ctx.Done():
			}
			if err := net.StartReplica(0); err != nil {
				return nil, err
			}
			fmt.Fprintln(stdout, "restarted replica 0")
		}
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, nil
}

// convergedDigest waits until every running replica but exclude executed
// the same sequence and returns their common state digest, or an error if
// they differ.
func convergedDigest(net *localnet.Net, exclude int, wait time.Duration) ([32]byte, uint64, error) {
	deadline := time.Now().Add(wait)
	for {
		var sts []node.Status
		for i := range net.Replicas {
			if n := net.Replica(i); n != nil && i != exclude {
				sts = append(sts, n.Status())
			}
		}
		first := sts[0]
		same := true
		for _, st := range sts[1:] {
			if st.ExecutedSequence != first.ExecutedSequence {
				same = false
				break
			}
			if st.StateDigest != first.StateDigest {
				return first.StateDigest, 0, fmt.Errorf("SAFETY: replicas %d and %d executed up to %d but hold different state digests", first.Index, st.Index, st.ExecutedSequence)
			}
		}
		if same {
			return first.StateDigest, first.ExecutedSequence, nil
		}
		if time.Now().After(deadline) {
			return first.StateDigest, 0, fmt.Errorf("replicas did not reach the same sequence within %s", wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// currentLeader returns the replica most running replicas name as leader
// (0 if none is named).
func currentLeader(net *localnet.Net) int {
	votes := make(map[int]int)
	best, bestVotes := 0, 0
	for i := range net.Replicas {
		if n := net.Replica(i); n != nil {
			if l := n.Status().Leader; l >= 0 {
				votes[l]++
				if votes[l] > bestVotes {
					best, bestVotes = l, votes[l]
				}
			}
		}
	}
	return best
}
