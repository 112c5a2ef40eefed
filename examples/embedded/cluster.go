package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/pbftnode/pbftnode"
)

// cluster is the replicas running in this process and their applications
// (apps[i] is replica i's).
type cluster struct {
	replicas []*pbftnode.Replica
	apps     []*Counters
}

// startCluster starts a replica of a fresh Counters in each of the n homes
// WriteTestnet wrote under dir.
func startCluster(dir string, n int, logger *slog.Logger) (*cluster, error) {
	c := &cluster{}
	for i := range n {
		a := NewCounters()
		r, err := pbftnode.StartReplica(pbftnode.TestnetHome(dir, i), a, pbftnode.WithLogger(logger.With("replica", i)))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("replica %d: %w", i, err), c.close())
		}
		c.replicas, c.apps = append(c.replicas, r), append(c.apps, a)
	}
	return c, nil
}

// restart closes replica i and starts it again on its home with a fresh
// Counters: the replica's database remembers what it executed, the
// application nothing.
func (c *cluster) restart(dir string, i int, logger *slog.Logger) error {
	if err := c.replicas[i].Close(); err != nil {
		return fmt.Errorf("replica %d: close: %w", i, err)
	}
	a := NewCounters()
	r, err := pbftnode.StartReplica(pbftnode.TestnetHome(dir, i), a, pbftnode.WithLogger(logger.With("replica", i)))
	if err != nil {
		return fmt.Errorf("replica %d: restart: %w", i, err)
	}
	c.replicas[i], c.apps[i] = r, a
	return nil
}

// close stops every replica.
func (c *cluster) close() error {
	var errs []error
	for i, r := range c.replicas {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("replica %d: close: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// pollInterval is how often waitAgreement reads the replicas' status.
const pollInterval = 20 * time.Millisecond

// waitAgreement waits until every replica executed the same sequence with
// the same state digest and returns that status. Called once every
// client has its results: f+1 replicas (Raft: one) executed everything,
// so the others only have to catch up.
func (c *cluster) waitAgreement(ctx context.Context) (pbftnode.Status, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		sts := make([]pbftnode.Status, len(c.replicas))
		same := true
		for i, r := range c.replicas {
			sts[i] = r.Status()
			same = same && sts[i].ExecutedSequence == sts[0].ExecutedSequence && sts[i].StateDigest == sts[0].StateDigest
		}
		if same && sts[0].ExecutedSequence > 0 {
			return sts[0], nil
		}
		select {
		case <-ctx.Done():
			return pbftnode.Status{}, fmt.Errorf("replicas did not converge: %s: %w", describe(sts), ctx.Err())
		case <-tick.C:
		}
	}
}

// describe lists each replica's executed sequence and digest.
func describe(sts []pbftnode.Status) string {
	s := ""
	for i, st := range sts {
		s += fmt.Sprintf(" replica %d at %d (%x)", i, st.ExecutedSequence, st.StateDigest[:4])
	}
	return s
}

// checkApplications checks that every application is at sequence with
// the same digest and holds exactly the counters expected.
func (c *cluster) checkApplications(ctx context.Context, sequence uint64, expected map[string]int64) error {
	first, err := c.apps[0].Info(ctx)
	if err != nil {
		return err
	}
	for i, a := range c.apps {
		st, err := a.Info(ctx)
		if err != nil {
			return err
		}
		if st.Sequence != sequence || st.Digest != first.Digest {
			return fmt.Errorf("application %d is at sequence %d with digest %x; application 0 at %d with %x, the replicas at %d",
				i, st.Sequence, st.Digest[:8], first.Sequence, first.Digest[:8], sequence)
		}
		if got := a.Values(); !maps.Equal(got, expected) {
			return fmt.Errorf("application %d holds %v, the clients' results say %v", i, got, expected)
		}
	}
	return nil
}
