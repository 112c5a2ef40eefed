package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pbftnode/pbftnode/config"
)

// executedSource reads a replica's executed sequence (its /status
// executed_sequence).
type executedSource interface {
	executed(ctx context.Context, replica int) (uint64, error)
}

// clusterExecuted reads executed sequences from a running cluster.
type clusterExecuted struct{ cl *cluster }

func (s clusterExecuted) executed(ctx context.Context, i int) (uint64, error) {
	st, err := s.cl.status(ctx, i)
	return st.ExecutedSequence, err
}

// catchUpPoll is how often the catch-up wait reads the sequences.
const catchUpPoll = 100 * time.Millisecond

// errCatchUpTimeout is returned (wrapped) by waitCaughtUp when the
// target did not catch up in time.
var errCatchUpTimeout = errors.New("replica did not catch up")

// catchUpWatch is one catch-up wait: target is the wiped replica, others
// the ones it must reach.
type catchUpWatch struct {
	src     executedSource
	target  int
	others  []int
	timeout time.Duration
	// now and pause are the clock and the wait between rounds (time.Now
	// and a sleep; a test injects fakes).
	now   func() time.Time
	pause func(ctx context.Context) error
}

// wait polls in rounds from start: each round reads the others' executed
// sequences, then the target's, and ends the wait when the target's is
// at least the lowest of the others' in that round. It returns the time
// from start to that round's target read and the sequence reached. A
// replica that does not answer (the target while it starts or restores)
// makes its round inconclusive. After timeout it fails with
// errCatchUpTimeout.
func (w catchUpWatch) wait(ctx context.Context, start time.Time) (time.Duration, uint64, error) {
	for {
		if reached, ok := w.round(ctx); ok {
			return w.now().Sub(start), reached, nil
		}
		if elapsed := w.now().Sub(start); elapsed >= w.timeout {
			return elapsed, 0, fmt.Errorf("%w: replica %d within %v", errCatchUpTimeout, w.target, w.timeout)
		}
		if err := w.pause(ctx); err != nil {
			return w.now().Sub(start), 0, err
		}
	}
}

// round reads the sequences once: whether the target caught up, and its
// executed sequence.
func (w catchUpWatch) round(ctx context.Context) (uint64, bool) {
	lowest, any := uint64(0), false
	for _, i := range w.others {
		seq, err := w.src.executed(ctx, i)
		if err != nil {
			continue
		}
		if !any || seq < lowest {
			lowest, any = seq, true
		}
	}
	if !any {
		return 0, false
	}
	seq, err := w.src.executed(ctx, w.target)
	if err != nil || seq < lowest {
		return seq, false
	}
	return seq, true
}

// measureCatchUp runs cfg's load on cl, waits until every replica
// executed catchUpFloor, kills a backup (not the leader), wipes its data,
// restarts it and times its catch-up (catchUpWatch) under the load.
func measureCatchUp(ctx context.Context, cfg Config, cl *cluster, prog progress, timeout time.Duration, r *ScaleResult) error {
	clients, err := clusterClients(cfg, cl)
	if err != nil {
		return err
	}
	defer closeClients(clients)
	ld := newLoad(cfg, spread(clients, cfg.Clients), newKVWorkload(cfg))
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		ld.run(loadCtx, time.Now())
		close(loadDone)
	}()
	defer func() {
		stopLoad()
		<-loadDone
	}()
	src := clusterExecuted{cl}
	if err := waitAllExecuted(ctx, src, cl.running(), catchUpFloor(cfg.Protocol), timeout); err != nil {
		return err
	}
	victim, leader, err := cl.killBackup(ctx, cfg.Replicas)
	if err != nil {
		return err
	}
	prog.say("killed backup replica %d (leader %d); wiping it and restarting it under load", victim, leader)
	if err := os.RemoveAll(filepath.Join(cl.home(victim), config.DefaultDataDir)); err != nil {
		return fmt.Errorf("wipe replica %d: %w", victim, err)
	}
	var others []int
	for _, i := range cl.running() {
		others = append(others, i)
	}
	start := time.Now()
	if err := cl.start(victim); err != nil {
		return err
	}
	watch := catchUpWatch{src: src, target: victim, others: others, timeout: timeout, now: time.Now,
		pause: func(ctx context.Context) error { return sleepUntil(ctx, time.Now().Add(catchUpPoll)) }}
	took, seq, err := watch.wait(ctx, start)
	r.CatchUpReplica, r.CatchUpMs, r.CaughtUp = ptr(victim), ptr(ms(took)), ptr(err == nil)
	r.CatchUpSequence = seq
	if err != nil && !errors.Is(err, errCatchUpTimeout) {
		return err
	}
	if counts, merr := transferCounts(ctx, cl, victim); merr == nil {
		r.CatchUpTransfers = ptr(counts[metricTransfers])
		r.CatchUpTransferS = ptr(counts[metricTransferSeconds+"_sum"])
	}
	prog.say("replica %d caught up in %.1f s (sequence %d, caught up %v)", victim, took.Seconds(), seq, err == nil)
	return nil
}

// The state-transfer metrics the catch-up reports.
const (
	metricTransfers       = "pbftnode_state_transfers_total"
	metricTransferSeconds = "pbftnode_state_transfer_seconds"
)

// transferCounts reads replica i's state-transfer metrics.
func transferCounts(ctx context.Context, cl *cluster, i int) (map[string]float64, error) {
	body, err := get(ctx, cl.hc, cl.httpURL(i, "/metrics"))
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return metricSums(body, metricTransfers, metricTransferSeconds+"_sum")
}

// waitAllExecuted waits until each of replicas executed at least floor.
func waitAllExecuted(ctx context.Context, src executedSource, replicas []int, floor uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, i := range replicas {
		for {
			seq, err := src.executed(ctx, i)
			if err == nil && seq >= floor {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("replica %d executed %d < %d after %v (%v)", i, seq, floor, timeout, err)
			}
			if err := sleepUntil(ctx, time.Now().Add(catchUpPoll)); err != nil {
				return err
			}
		}
	}
	return nil
}
