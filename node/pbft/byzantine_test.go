package pbft_test

// End-to-end Byzantine fault tests: one test per strategy of package
// byzantine, each on 4 in-process replicas (f = 1) with default protocol
// timeouts, and a test that stops the primaries of three views in a row.
// Each strategy test shows (1) the fault happened (the strategy's Filter
// counted actions, and where the primary must be replaced, the correct
// replicas changed views), (2) the correct replicas hold the same state
// digest and (3) every client result matched the key-value model
// (runWorkload checks each one) and every operation completed.

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
)

// byzWorkload is the load of each strategy test: 2 clients x 4 workers x
// 20 operations.
const (
	byzClients = 2
	byzWorkers = 4
	byzRounds  = 20
	byzOps     = byzClients * byzWorkers * byzRounds
)

// startByzantine starts 4 replicas of which replica liar runs strategy.
func startByzantine(t *testing.T, strategy string, liar int) (*localnet.Net, *byzantine.Filter) {
	t.Helper()
	var filter *byzantine.Filter
	var ferr error
	net := startNet(t, localnet.Options{
		FilterFactory: func(i int, key ed25519.PrivateKey, cluster string) pbft.Filter {
			if i != liar {
				return nil
			}
			filter, ferr = byzantine.New(strategy, uint32(i), 4, key, cluster)
			return filter
		},
	})
	if ferr != nil || filter == nil {
		t.Fatalf("byzantine.New(%q): %v", strategy, ferr)
	}
	return net, filter
}

// statusLine summarises every running replica for failure messages.
func statusLine(net *localnet.Net) string {
	var parts []string
	for i, n := range net.Nodes {
		if n == nil {
			parts = append(parts, fmt.Sprintf("%d:stopped", i))
			continue
		}
		st := n.Status()
		parts = append(parts, fmt.Sprintf("%d:view %d active %v executed %d", i, st.View, st.ViewActive, st.ExecutedSequence))
	}
	return strings.Join(parts, "; ")
}

// waitUntil polls cond every 10 ms and fails the test, naming what it
// waited for and the replicas' status, if cond is not true within timeout.
func waitUntil(t *testing.T, net *localnet.Net, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s; replicas: %s", timeout, what, statusLine(net))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inView reports whether every running replica except skip is active in
// a view of at least view.
func inView(net *localnet.Net, skip int, view uint64) bool {
	for i, n := range net.Nodes {
		if n == nil || i == skip {
			continue
		}
		if st := n.Status(); st.View < view || !st.ViewActive {
			return false
		}
	}
	return true
}

// waitConvergedExcept is waitConverged over the running replicas other
// than skip (the Byzantine one, whose state is not to be trusted).
func waitConvergedExcept(t *testing.T, net *localnet.Net, skip int) node.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sts []node.Status
		for i, n := range net.Nodes {
			if n != nil && i != skip {
				sts = append(sts, n.Status())
			}
		}
		if len(sts) < 2 {
			t.Fatalf("only %d correct replicas running; nothing to compare", len(sts))
		}
		if sameExecuted(t, sts, "correct replicas") {
			return sts[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("correct replicas (all but %d) did not converge: %s", skip, statusLine(net))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// timedProbe runs one put on its own key and returns how long after since
// it succeeded; the result must be Ok.
func timedProbe(ctx context.Context, t *testing.T, c *client.Client, key string, since time.Time) time.Duration {
	t.Helper()
	if res := invoke(ctx, t, c, execution.EncodePut([]byte(key), []byte("probe"))); !res.Ok {
		t.Fatalf("probe put %s failed: %+v", key, res)
	}
	return time.Since(since)
}

// strategyTest runs the full workload against a cluster whose replica
// liar follows strategy, and checks the three properties. needViewChange
// says the correct replicas must have replaced the primary.
func strategyTest(t *testing.T, strategy string, needViewChange bool) {
	const liar = 0
	net, filter := startByzantine(t, strategy, liar)
	start := time.Now()
	if n := runWorkload(t, net, byzClients, byzWorkers, byzRounds); n != byzOps {
		t.Fatalf("%d operations completed with replica %d %s, want %d", n, liar, strategy, byzOps)
	}
	t.Logf("%s: %d operations in %s, %d faults injected", strategy, byzOps, time.Since(start).Round(time.Millisecond), filter.Actions())
	if filter.Actions() == 0 {
		t.Fatalf("replica %d (%s) injected no fault; the test proved nothing", liar, strategy)
	}
	if needViewChange {
		waitUntil(t, net, 10*time.Second, "every correct replica left view 0", func() bool { return inView(net, liar, 1) })
	}
	st := waitConvergedExcept(t, net, liar)
	if st.ExecutedSequence == 0 {
		t.Fatal("correct replicas converged on an empty log")
	}
}

func TestByzantineStrategySilentPrimary(t *testing.T) {
	strategyTest(t, "silent", true)
}

func TestByzantineStrategyEquivocatingPrimary(t *testing.T) {
	strategyTest(t, "equivocate", true)
}

func TestByzantineStrategyWithholdingPrimary(t *testing.T) {
	strategyTest(t, "withhold", true)
}

// The primary forges every reply; clients accept only f+1 matching ones,
// so each result still matches the model (runWorkload checks it).
func TestByzantineStrategyWrongResults(t *testing.T) {
	strategyTest(t, "wrong-results", false)
}

// Replica 1, the primary of view 1, sends a NEW-VIEW with a re-proposal
// dropped or fabricated. Replica 0 is stopped under load so that view 1
// must start; the correct replicas must reject replica 1's NEW-VIEW. The
// check: a sampler reads replicas 2 and 3 every 2 ms for the whole test
// and none may ever be active in view 1 (a view becomes active only
// through a NEW-VIEW its primary sent, and replica 1 sent only bogus
// ones; had 2 and 3 accepted one, they would stay active in view 1, as
// 1, 2, 3 are a quorum, far longer than the sampling period). With
// replica 0 down and replica 1 lying the cluster is beyond f, so replica
// 0 is restarted once replica 1 has lied; then view 2 (primary 2) must
// start and every pending operation complete.
func TestByzantineStrategyBadNewView(t *testing.T) {
	const liar = 1
	net, filter := startByzantine(t, "bad-new-view", liar)
	if n := runWorkload(t, net, 1, 4, 8); n != 32 {
		t.Fatalf("%d warm-up operations completed, want 32", n)
	}
	if filter.Actions() != 0 {
		t.Fatalf("replica %d injected %d faults in view 0, where it sends no NEW-VIEW", liar, filter.Actions())
	}

	correct := []*pbft.Node{net.Nodes[2], net.Nodes[3]}
	stopSampler := make(chan struct{})
	var sampler sync.WaitGroup
	var sawView1 atomic.Pointer[string] // the first offending status
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, n := range correct {
				if st := n.Status(); st.View == 1 && st.ViewActive {
					s := fmt.Sprintf("%+v", st)
					sawView1.CompareAndSwap(nil, &s)
				}
			}
			select {
			case <-stopSampler:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stopSampler); sampler.Wait() }()

	// Background load, so that clients are pending when replica 0 stops.
	// If the test fails early, wait for it (runWorkload bounds itself to
	// 60 s) before the cluster closes, so it never reports to a finished
	// test.
	loadDone := make(chan int64, 1)
	var load sync.WaitGroup
	load.Add(1)
	t.Cleanup(load.Wait)
	go func() {
		defer load.Done()
		loadDone <- runWorkload(t, net, byzClients, byzWorkers, byzRounds)
	}()
	before := net.Nodes[2].Status().ExecutedSequence
	waitUntil(t, net, 10*time.Second, "the background load commits", func() bool {
		return net.Nodes[2].Status().ExecutedSequence > before
	})

	probe, err := net.NewClient(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if err := net.StopReplica(0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	type probeResult struct {
		took time.Duration
		err  error
	}
	probeDone := make(chan probeResult, 1)
	go func() {
		// Not invoke: this goroutine may outlive a failed test.
		_, err := probe.Invoke(ctx, execution.EncodePut([]byte("probe-bad-new-view"), []byte("x")))
		probeDone <- probeResult{time.Since(stopped), err}
	}()

	waitUntil(t, net, 20*time.Second, "replica 1 sends a bogus NEW-VIEW for view 1", func() bool { return filter.Actions() > 0 })
	t.Logf("bad-new-view: replica 1 lied %s after replica 0 stopped", time.Since(stopped).Round(time.Millisecond))
	restarted := time.Now()
	if err := net.StartReplica(0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, net, 30*time.Second, "replicas 0, 2, 3 are active in view >= 2", func() bool {
		return sawView1.Load() != nil || inView(net, liar, 2)
	})
	if s := sawView1.Load(); s != nil {
		t.Fatalf("a correct replica was active in view 1, whose only NEW-VIEW was replica 1's bogus one: %s", *s)
	}
	t.Logf("bad-new-view: view %d active on the correct replicas %s after replica 0 restarted", net.Nodes[2].Status().View, time.Since(restarted).Round(time.Millisecond))

	select {
	case p := <-probeDone:
		if p.err != nil {
			t.Fatalf("probe issued after replica 0 stopped: %v", p.err)
		}
		d := p.took
		t.Logf("bad-new-view: first operation issued after the stop completed %s after it (%s after the restart)", d.Round(time.Millisecond), (d - restarted.Sub(stopped)).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("probe did not complete 30s after view 2 started; replicas: %s", statusLine(net))
	}
	if n := <-loadDone; n != byzOps {
		t.Fatalf("%d background operations completed across the view changes, want %d", n, byzOps)
	}
	if s := sawView1.Load(); s != nil {
		t.Fatalf("a correct replica was active in view 1, whose only NEW-VIEW was replica 1's bogus one: %s", *s)
	}
	for i, n := range net.Nodes {
		if i != liar {
			if st := n.Status(); st.View < 2 {
				t.Fatalf("replica %d ended in view %d, want >= 2", i, st.View)
			}
		}
	}
	waitConvergedExcept(t, net, liar)
}

// The primaries of views 0, 1 and 2 are stopped one after another; each
// is restarted, and has rejoined the current view, before the next is
// stopped. After each stop a probe operation must complete (its latency
// is the time from the stop to the first successful operation). Then the
// cluster must commit the full workload and converge.
func TestPrimariesOfThreeViewsStopped(t *testing.T) {
	net := startNet(t, localnet.Options{})
	if n := runWorkload(t, net, 1, 4, 8); n != 32 {
		t.Fatalf("%d warm-up operations completed, want 32", n)
	}
	c, err := net.NewClient(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	for view := uint64(0); view < 3; view++ {
		primary := int(protocol.Primary(view, len(net.Nodes)))
		waitUntil(t, net, 10*time.Second, fmt.Sprintf("every replica is active in view %d", view), func() bool { return inView(net, -1, view) })
		stopped := time.Now()
		if err := net.StopReplica(primary); err != nil {
			t.Fatal(err)
		}
		d := timedProbe(ctx, t, c, fmt.Sprintf("probe-%d", view), stopped)
		t.Logf("primary %d of view %d stopped: first operation committed %s later", primary, view, d.Round(time.Millisecond))
		waitUntil(t, net, 10*time.Second, fmt.Sprintf("the running replicas move past view %d", view), func() bool { return inView(net, primary, view+1) })
		if err := net.StartReplica(primary); err != nil {
			t.Fatal(err)
		}
		// The restarted replica must be back in the current view before
		// the next primary stops, or two replicas would be out.
		current := net.Nodes[(primary+1)%len(net.Nodes)].Status().View
		rejoin := time.Now()
		for i := 0; !inView(net, -1, current); i++ {
			if time.Since(rejoin) > 20*time.Second {
				t.Fatalf("replica %d did not rejoin view %d; replicas: %s", primary, current, statusLine(net))
			}
			timedProbe(ctx, t, c, fmt.Sprintf("rejoin-%d-%d", view, i), rejoin)
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("replica %d restarted and active in view %d after %s", primary, current, time.Since(rejoin).Round(time.Millisecond))
	}
	if st := net.Nodes[0].Status(); st.View < 3 {
		t.Fatalf("after stopping the primaries of views 0, 1, 2 the cluster is in view %d, want >= 3", st.View)
	}
	if n := runWorkload(t, net, byzClients, byzWorkers, byzRounds); n != byzOps {
		t.Fatalf("%d operations completed after three primary changes, want %d", n, byzOps)
	}
	waitConvergedExcept(t, net, -1)
}
