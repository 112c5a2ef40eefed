package main

// Multi-process view-change checks, on the cluster and helpers of
// process_test.go: the primary is SIGKILLed under load from the Go client
// library and the survivors must elect a new one and keep committing
// without losing an acknowledged write; and the primaries of three
// successive views are killed (each restarted from its database before
// the next is killed) and the cluster must still commit and converge.
//
// Both tests are skipped under -short.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/proctest"
)

const (
	vcWorkers       = 8
	vcKeysPerWorker = 4
	// vcMinAckedAfterKill is how many puts issued after the kill must be
	// acknowledged within vcAckWindow of it.
	vcMinAckedAfterKill = 100
	vcAckWindow         = 10 * time.Second
	// vcLivenessBound bounds the kill-to-first-commit time; the goal
	// (under 2 s with default timeouts) is reported, not asserted.
	vcLivenessBound = 15 * time.Second
)

// vcFreshClient is a client with a key of its own (so it shares no peer
// ID with another client of the testnet) that accepts a result once
// quorum replicas sent the same one.
func vcFreshClient(t *testing.T, dir string, quorum int) *client.Client {
	return proctest.ClientOf(t, dir, quorum)
}

// vcPut puts key=value through cl and fails unless the cluster
// acknowledges it.
func vcPut(ctx context.Context, cl *client.Client, key, value string) error {
	raw, err := cl.Invoke(ctx, execution.EncodePut([]byte(key), []byte(value)))
	if err != nil {
		return err
	}
	res, err := execution.DecodeResult(raw)
	if err != nil {
		return err
	}
	if !res.Ok || res.Error != "" {
		return fmt.Errorf("put %s: result %+v", key, res)
	}
	return nil
}

// vcGet reads key through cl; found is false for an absent key.
func vcGet(ctx context.Context, cl *client.Client, key string) (value string, found bool, err error) {
	raw, err := cl.Invoke(ctx, execution.EncodeGet([]byte(key)))
	if err != nil {
		return "", false, err
	}
	res, err := execution.DecodeResult(raw)
	if err != nil {
		return "", false, err
	}
	if res.Error != "" {
		return "", false, fmt.Errorf("get %s refused: %s", key, res.Error)
	}
	return string(res.Value), res.Ok, nil
}

// vcAck is one acknowledged put.
type vcAck struct {
	n              int // the value's counter
	issued, acked  time.Time
	worker, keyIdx int
}

// vcKeyLog is what one worker did to one of its keys, in order: the
// counters of every put it issued and of every put acknowledged.
type vcKeyLog struct {
	issued []int
	acked  []int
}

// vcLoad is vcWorkers goroutines sharing one client, each putting to keys
// of its own values with a counter that increases per worker.
type vcLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	acks []vcAck // every acknowledged put, in acknowledgement order
	errs []error // puts that failed other than by the load stopping

	keys [vcWorkers][vcKeysPerWorker]vcKeyLog // written only by their worker
}

func vcKey(worker, k int) string   { return fmt.Sprintf("vc-w%d-k%d", worker, k) }
func vcValue(worker, n int) string { return fmt.Sprintf("w%d-%09d", worker, n) }

// vcParseValue returns the worker and counter of a vcValue.
func vcParseValue(v string) (worker, n int, err error) {
	w, num, ok := strings.Cut(v, "-")
	if !ok || !strings.HasPrefix(w, "w") {
		return 0, 0, fmt.Errorf("malformed value %q", v)
	}
	if worker, err = strconv.Atoi(w[1:]); err != nil {
		return 0, 0, fmt.Errorf("malformed value %q: %w", v, err)
	}
	if n, err = strconv.Atoi(num); err != nil {
		return 0, 0, fmt.Errorf("malformed value %q: %w", v, err)
	}
	return worker, n, nil
}

func startVCLoad(cl *client.Client) *vcLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &vcLoad{cancel: cancel}
	for w := range vcWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 1; ctx.Err() == nil; n++ {
				k := n % vcKeysPerWorker
				kl := &l.keys[w][k]
				kl.issued = append(kl.issued, n)
				issued := time.Now()
				err := vcPut(ctx, cl, vcKey(w, k), vcValue(w, n))
				acked := time.Now()
				if err != nil {
					if ctx.Err() != nil && errors.Is(err, context.Canceled) {
						return // stopped: the put may or may not take effect
					}
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Errorf("worker %d put %s=%s: %w", w, vcKey(w, k), vcValue(w, n), err))
					l.mu.Unlock()
					return
				}
				kl.acked = append(kl.acked, n)
				l.mu.Lock()
				l.acks = append(l.acks, vcAck{n: n, issued: issued, acked: acked, worker: w, keyIdx: k})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stop ends the load and waits for every worker.
func (l *vcLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// snapshot returns a copy of the acknowledged puts so far and the errors.
func (l *vcLoad) snapshot() ([]vcAck, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks), slices.Clone(l.errs)
}

// vcAfterKill summarizes the acknowledged puts issued after killAt: how
// many, how many per worker, the earliest acknowledgement and how many
// were acknowledged by killAt+window.
func vcAfterKill(acks []vcAck, killAt time.Time, window time.Duration) (total, inWindow int, perWorker [vcWorkers]int, first time.Time) {
	for _, a := range acks {
		if !a.issued.After(killAt) {
			continue
		}
		total++
		perWorker[a.worker]++
		if !a.acked.After(killAt.Add(window)) {
			inWindow++
		}
		if first.IsZero() || a.acked.Before(first) {
			first = a.acked
		}
	}
	return
}

// TestProcessViewChangeKillPrimaryUnderLoad is the multi-process
// check: SIGKILL the primary under load; the clients must keep getting
// results, the survivors must move to a later view, and every
// acknowledged put must survive.
func TestProcessViewChangeKillPrimaryUnderLoad(t *testing.T) {
	c := startProcCluster(t)
	for i := range procReplicas {
		if v := c.mustMetric(i, "pbftnode_view"); v != 0 {
			t.Fatalf("replica %d starts in view %v, want 0 (replica 0 the primary)", i, v)
		}
	}
	cl, err := openClient(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })

	load := startVCLoad(cl)
	stopped := false
	defer func() {
		if !stopped {
			load.stop()
		}
	}()

	// About a second of load with replica 0 the primary; it must commit.
	loadStart := time.Now()
	for {
		acks, errs := load.snapshot()
		if len(errs) > 0 {
			t.Fatalf("load failed before the kill: %v", errs)
		}
		if time.Since(loadStart) >= time.Second && len(acks) > 0 {
			break
		}
		if time.Since(loadStart) > 20*time.Second {
			t.Fatalf("no put acknowledged within 20 s of starting the load")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before, _ := load.snapshot()
	t.Logf("%d puts acknowledged in %v of load before the kill (%.0f ops/s)", len(before),
		time.Since(loadStart).Round(time.Millisecond), float64(len(before))/time.Since(loadStart).Seconds())

	killAt := time.Now()
	c.kill(0)
	t.Logf("SIGKILLed the primary (replica 0); it exited %v after the signal", time.Since(killAt).Round(time.Millisecond))

	// Keep the load running until enough puts issued after the kill are
	// acknowledged, or the bounds pass.
	deadline := killAt.Add(max(vcAckWindow, vcLivenessBound))
	for {
		acks, errs := load.snapshot()
		if len(errs) > 0 {
			t.Fatalf("load failed after the kill: %v", errs)
		}
		total, _, perWorker, _ := vcAfterKill(acks, killAt, vcAckWindow)
		if (total >= vcMinAckedAfterKill && !slices.Contains(perWorker[:], 0)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	acks, _ := load.snapshot()
	total, inWindow, perWorker, first := vcAfterKill(acks, killAt, vcAckWindow)
	if first.IsZero() {
		t.Fatalf("no put issued after the kill was acknowledged within %v", time.Since(killAt).Round(time.Millisecond))
	}
	firstCommit := first.Sub(killAt)
	t.Logf("kill-to-first-commit: %v (goal < 2 s with default timeouts; reported, not asserted)", firstCommit.Round(time.Millisecond))
	if firstCommit >= vcLivenessBound {
		t.Fatalf("first put issued after the kill was acknowledged %v after it, want < %v", firstCommit, vcLivenessBound)
	}
	t.Logf("puts issued after the kill and acknowledged within %v of it: %d (per worker %v)", vcAckWindow, inWindow, perWorker)
	if inWindow < vcMinAckedAfterKill {
		t.Fatalf("only %d puts issued after the kill were acknowledged within %v of it, want at least %d", inWindow, vcAckWindow, vcMinAckedAfterKill)
	}
	for w, n := range perWorker {
		if n == 0 {
			t.Fatalf("worker %d got no put issued after the kill acknowledged within %v", w, time.Since(killAt).Round(time.Millisecond))
		}
	}

	for i := 1; i < procReplicas; i++ {
		view := c.mustMetric(i, "pbftnode_view")
		changes := c.mustMetric(i, "pbftnode_view_changes_total")
		vcCount := c.mustMetric(i, "pbftnode_view_change_seconds_count")
		vcSum := c.mustMetric(i, "pbftnode_view_change_seconds_sum")
		var mean time.Duration
		if vcCount > 0 {
			mean = time.Duration(vcSum / vcCount * float64(time.Second))
		}
		t.Logf("replica %d: view %v, view changes %v, mean view-change time %v", i, view, changes, mean.Round(time.Microsecond))
		if view < 1 {
			t.Errorf("surviving replica %d reports pbftnode_view %v, want >= 1", i, view)
		}
		if changes < 1 {
			t.Errorf("surviving replica %d reports pbftnode_view_changes_total %v, want >= 1", i, changes)
		}
	}

	load.stop()
	stopped = true
	acks, errs := load.snapshot()
	if len(errs) > 0 {
		t.Fatalf("load failed: %v", errs)
	}
	t.Logf("%d puts acknowledged in all, %d of them issued after the kill", len(acks), total)
	_ = cl.Close()

	// Every acknowledged put must be readable: its value, or a value the
	// same worker put to that key later. The reader needs the three
	// survivors to agree.
	reader := vcFreshClient(t, c.dir, procReplicas-1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	checked := 0
	for w := range vcWorkers {
		for k := range vcKeysPerWorker {
			kl := load.keys[w][k]
			key := vcKey(w, k)
			got, found, err := vcGet(ctx, reader, key)
			if err != nil {
				t.Fatalf("get %s: %v", key, err)
			}
			if len(kl.acked) == 0 {
				continue // nothing acknowledged to check (the load always acks some)
			}
			checked++
			last := kl.acked[len(kl.acked)-1]
			if !found {
				t.Errorf("get %s: not found, but put %s was acknowledged", key, vcValue(w, last))
				continue
			}
			gw, gn, err := vcParseValue(got)
			if err != nil {
				t.Errorf("get %s: %v", key, err)
				continue
			}
			lastPos := slices.Index(kl.issued, last)
			gotPos := slices.Index(kl.issued, gn)
			if gw != w || gotPos < 0 {
				t.Errorf("get %s = %q, which worker %d never put to that key (last acknowledged %s)", key, got, w, vcValue(w, last))
			} else if gotPos < lastPos {
				t.Errorf("get %s = %q, older than the acknowledged %s: an acknowledged put was lost", key, got, vcValue(w, last))
			}
		}
	}
	if checked != vcWorkers*vcKeysPerWorker {
		t.Errorf("only %d of %d keys had an acknowledged put", checked, vcWorkers*vcKeysPerWorker)
	}
}

// vcWaitView waits until every replica in reps reports pbftnode_view at
// least min and not changing views, and returns the highest view seen.
func (c *procCluster) vcWaitView(reps []int, min float64, timeout time.Duration) float64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, hi := true, 0.0
		var seen []string
		for _, i := range reps {
			v, err := c.metric(i, "pbftnode_view")
			changing, err2 := c.metric(i, "pbftnode_view_changing")
			if err == nil && err2 != nil {
				err = err2
			}
			seen = append(seen, fmt.Sprintf("replica %d: view %v changing %v (%v)", i, v, changing, err))
			if err != nil || v < min || changing != 0 {
				ok = false
			}
			hi = max(hi, v)
		}
		if ok {
			return hi
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replicas %v do not all report a settled view >= %v within %v: %s", reps, min, timeout, strings.Join(seen, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcessSuccessivePrimariesKilled kills the primaries of three
// successive views, restarting each from its database before killing the
// next; the cluster must still commit, read back every write, and
// converge.
func TestProcessSuccessivePrimariesKilled(t *testing.T) {
	c := startProcCluster(t)
	cl, err := openClient(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	written := map[string]string{}
	put := func(key, value string) time.Duration {
		t.Helper()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := vcPut(ctx, cl, key, value); err != nil {
			t.Fatalf("put %s=%s: %v", key, value, err)
		}
		written[key] = value
		return time.Since(start)
	}
	all := []int{0, 1, 2, 3}
	put("start", "0")

	var views []float64
	for step := range 3 {
		view := c.vcWaitView(all, 0, 30*time.Second)
		for _, i := range all {
			if v := c.mustMetric(i, "pbftnode_view"); v != view {
				t.Fatalf("step %d: replica %d is in view %v, the others in %v", step, i, v, view)
			}
		}
		views = append(views, view)
		primary := int(uint64(view) % procReplicas)
		var survivors []int
		for _, i := range all {
			if i != primary {
				survivors = append(survivors, i)
			}
		}

		killAt := time.Now()
		c.kill(primary)
		// A put the dead primary cannot order makes the backups suspect it.
		took := put(fmt.Sprintf("after-kill-%d", step), strconv.Itoa(step))
		newView := c.vcWaitView(survivors, view+1, 30*time.Second)
		t.Logf("step %d: killed replica %d, primary of view %v; first put after the kill took %v; survivors now in view %v (%v after the kill)",
			step, primary, view, took.Round(time.Millisecond), newView, time.Since(killAt).Round(time.Millisecond))

		if err := c.start(primary); err != nil {
			t.Fatal(err)
		}
		if err := c.waitServing(primary, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		put(fmt.Sprintf("after-restart-%d", step), strconv.Itoa(step))
		took = c.waitCaughtUp(primary, survivors[0], procCatchUp)
		c.vcWaitView([]int{primary}, newView, 30*time.Second)
		t.Logf("step %d: restarted replica %d caught up in %v", step, primary, took.Round(time.Millisecond))
	}
	t.Logf("killed the primaries of views %v", views)

	for i := range 20 {
		put(fmt.Sprintf("final-%02d", i), strconv.Itoa(i))
	}
	seq := c.waitAllEqual(30 * time.Second)
	t.Logf("all %d replicas at executed sequence %v, view %v", procReplicas, seq, c.mustMetric(0, "pbftnode_view"))
	if seq == 0 {
		t.Fatal("replicas converged on executed sequence 0")
	}

	reader := vcFreshClient(t, c.dir, procReplicas)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keys := make([]string, 0, len(written))
	for k := range written {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		got, found, err := vcGet(ctx, reader, k)
		if err != nil {
			t.Fatalf("get %s with all %d replicas required to agree: %v", k, procReplicas, err)
		}
		if !found || got != written[k] {
			t.Errorf("get %s = %q (found %v), want %q", k, got, found, written[k])
		}
	}
}
