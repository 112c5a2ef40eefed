package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
)

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	replicas := fs.Int("replicas", 4, "number of replicas (3f+1)")
	clients := fs.Int("clients", 4, "number of clients")
	workers := fs.Int("workers", 8, "concurrent operations per client")
	duration := fs.Duration("duration", 5*time.Second, "how long the clients run")
	noFsync := fs.Bool("unsafe-no-fsync", false, "turn fsync off")
	seed := fs.Uint64("seed", 1, "seed of the workload's key choice")
	logs := addLogFlags(fs, "warn")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *replicas < 4 || *clients < 1 || *workers < 1 || *duration <= 0 {
		return fmt.Errorf("%w: need at least 4 replicas, 1 client, 1 worker and a positive duration", errUsage)
	}
	logger, err := logs.logger(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "starting %d replicas on 127.0.0.1 (libp2p, fsync %v)\n", *replicas, !*noFsync)
	net, err := localnet.Start(localnet.Options{Replicas: *replicas, NoSync: *noFsync, Logger: logger})
	if err != nil {
		return err
	}
	defer net.Close()

	fmt.Fprintf(stdout, "running %d clients x %d concurrent operations for %s\n", *clients, *workers, *duration)
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
		wg        sync.WaitGroup
	)
	start := time.Now()
	for ci := range *clients {
		c, err := net.NewClient(500 * time.Millisecond)
		if err != nil {
			return err
		}
		for w := range *workers {
			rng := rand.New(rand.NewPCG(*seed, uint64(ci*1000+w)))
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
					d := time.Since(t0)
					mu.Lock()
					if err == nil {
						latencies = append(latencies, d)
					} else if ctx.Err() == nil {
						failures++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return fmt.Errorf("no operation committed in %s", elapsed)
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	fmt.Fprintf(stdout, "ops committed: %d (%d failed)\n", len(latencies), failures)
	fmt.Fprintf(stdout, "throughput:    %.0f ops/s\n", float64(len(latencies))/elapsed.Seconds())
	fmt.Fprintf(stdout, "latency:       p50 %s  p99 %s\n", pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond))

	digest, seq, err := convergedDigest(net, 20*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "state digest:  %s on all %d replicas (executed sequence %d)\n", hex.EncodeToString(digest[:8]), *replicas, seq)
	return nil
}

// convergedDigest waits until every replica executed the same sequence and
// returns their common state digest, or an error if they differ.
func convergedDigest(net *localnet.Net, wait time.Duration) ([32]byte, uint64, error) {
	deadline := time.Now().Add(wait)
	for {
		first := net.Nodes[0].Status()
		same := true
		for _, n := range net.Nodes[1:] {
			st := n.Status()
			if st.ExecutedSequence != first.ExecutedSequence {
				same = false
				break
			}
			if st.StateDigest != first.StateDigest {
				return first.StateDigest, 0, fmt.Errorf("SAFETY: replicas 0 and %d executed up to %d but hold different state digests", st.Index, st.ExecutedSequence)
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
