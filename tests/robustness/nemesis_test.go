package robustness

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/internal/proctest"
	"github.com/pbftnode/pbftnode/protocol"
)

// primaryOnly are the strategies that act only while their replica is
// the primary: the nemesis first moves the view to it.
var primaryOnly = []string{byzantine.StrategyEquivocate, byzantine.StrategyWithhold, byzantine.StrategySlowPrimary}

// nemesisStrategies are the strategies the nemesis draws from: every one
// a single faulty replica of four must be tolerated under, whatever its
// role (bad-new-view acts only while taking over a view, which needs
// a second fault in a 4-replica cluster, so it is left out).
var nemesisStrategies = append([]string{byzantine.StrategyWrongResults, byzantine.StrategySilent,
	byzantine.StrategyStaleFlood, byzantine.StrategyBadSignatureFlood}, primaryOnly...)

// Generous bounds for a busy 2-core machine.
const (
	serveTimeout = 60 * time.Second // a restarted replica serves /metrics
	viewTimeout  = 60 * time.Second // the survivors move past a killed primary
)

// nemesis injects faults into a cluster of 3f+1 = 4 replicas, never more
// than f = 1 at a time: one replica down, or the Byzantine replica
// active, or every replica down at once (a crash of the whole cluster,
// which stops progress but must lose nothing).
type nemesis struct {
	t        *testing.T
	c        *proctest.Cluster
	rng      *rand.Rand
	byz      int    // the replica that runs --byzantine strategy --byzantine-toggle
	strategy string // its strategy

	// What happened, for the report and the evidence checks.
	kills, restarts, killAlls, byzPhases int
	byzActions                           float64
	log                                  []string
}

func (n *nemesis) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	n.log = append(n.log, msg)
	n.t.Log("nemesis: " + msg)
}

// run injects faults until d has passed, each kind at least once: it
// goes through the kinds in a shuffled order, round after round.
func (n *nemesis) run(d time.Duration) {
	defer n.insistOnByzantine()
	deadline := time.Now().Add(d)
	kinds := []func(){n.killOne, n.killAll, n.byzantinePhase}
	for first := true; first || time.Now().Before(deadline); first = false {
		n.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, fault := range kinds {
			if !first && !time.Now().Before(deadline) {
				return
			}
			fault()
			if n.t.Failed() {
				return
			}
			n.pause(1000, 2000)
		}
	}
}

// maxExtraByzantinePhases bounds the Byzantine phases the nemesis adds
// after its run when none injected a fault.
const maxExtraByzantinePhases = 3

// insistOnByzantine runs further Byzantine phases, at most
// maxExtraByzantinePhases, while the run's phases injected no fault: a
// strategy that acts only as the primary is skipped when the view changes
// caused to reach its replica's view pass it by (a view change lacking a
// quorum while another replica is down or transferring state times out to
// the next view), and the test must see the fault happen.
func (n *nemesis) insistOnByzantine() {
	for i := 0; i < maxExtraByzantinePhases && n.byzActions == 0 && !n.t.Failed(); i++ {
		n.logf("no fault injected yet: another Byzantine phase")
		n.byzantinePhase()
	}
}

// pause sleeps between lo and hi milliseconds: the faults' durations,
// not a wait for an event.
func (n *nemesis) pause(lo, hi int) {
	time.Sleep(time.Duration(lo+n.rng.IntN(hi-lo+1)) * time.Millisecond)
}

// restart starts replica i again and waits until it serves.
func (n *nemesis) restart(i int) {
	if err := n.c.StartReplica(i); err != nil {
		n.t.Fatal(err)
	}
	if err := n.c.WaitServing(i, serveTimeout); err != nil {
		n.t.Fatal(err)
	}
	n.restarts++
}

// killOne SIGKILLs one replica under load and restarts it a few seconds
// later.
func (n *nemesis) killOne() {
	victim := n.rng.IntN(n.c.N)
	n.logf("SIGKILL replica %d", victim)
	n.c.Kill(victim)
	n.kills++
	n.pause(2000, 4000)
	n.restart(victim)
	n.logf("restarted replica %d", victim)
}

// killAll SIGKILLs every replica at once and restarts them all.
func (n *nemesis) killAll() {
	n.logf("SIGKILL all %d replicas", n.c.N)
	for i := range n.c.N {
		n.c.Kill(i)
		n.kills++
	}
	n.killAlls++
	n.pause(1000, 2000)
	for i := range n.c.N {
		if err := n.c.StartReplica(i); err != nil {
			n.t.Fatal(err)
		}
	}
	for i := range n.c.N {
		if err := n.c.WaitServing(i, serveTimeout); err != nil {
			n.t.Fatal(err)
		}
		n.restarts++
	}
	n.logf("restarted all replicas")
}

// byzantinePhase switches the Byzantine replica's strategy on (SIGUSR1)
// for a few seconds and off again (SIGUSR2), first making it the primary
// if its strategy acts only there, and adds what it did to byzActions.
func (n *nemesis) byzantinePhase() {
	if slices.Contains(primaryOnly, n.strategy) && !n.makePrimary(n.byz) {
		n.logf("replica %d did not become the primary; %s skipped this round", n.byz, n.strategy)
		return
	}
	before, err := n.c.Metric(n.byz, "pbftnode_fault_injections_total")
	if err != nil {
		n.t.Fatalf("Byzantine replica %d: %v", n.byz, err)
	}
	if err := n.c.Signal(n.byz, syscall.SIGUSR1); err != nil {
		n.t.Fatal(err)
	}
	n.logf("replica %d turns Byzantine (%s)", n.byz, n.strategy)
	n.byzPhases++
	n.pause(4000, 6000)
	if err := n.c.Signal(n.byz, syscall.SIGUSR2); err != nil {
		n.t.Fatal(err)
	}
	after, err := n.c.Metric(n.byz, "pbftnode_fault_injections_total")
	if err != nil {
		n.t.Fatalf("Byzantine replica %d: %v", n.byz, err)
	}
	n.byzActions += after - before
	n.logf("replica %d correct again after %v faults injected", n.byz, after-before)
}

// makePrimary moves the view until replica want is the primary, by
// SIGKILLing the current primary (a crash fault; want is correct
// meanwhile) and restarting it once the others moved on. It reports
// whether want became the primary within n view changes.
func (n *nemesis) makePrimary(want int) bool {
	for range n.c.N {
		view, primary, ok := n.currentView(-1)
		if !ok {
			n.t.Fatalf("no replica reports an active view within %v", viewTimeout)
		}
		if primary == want {
			return true
		}
		n.logf("SIGKILL primary %d of view %d (moving the view to replica %d)", primary, view, want)
		n.c.Kill(primary)
		n.kills++
		deadline := time.Now().Add(viewTimeout)
		for {
			if v, _, ok := n.currentView(primary); ok && v > view {
				break
			}
			if time.Now().After(deadline) {
				n.t.Fatalf("the replicas did not leave view %d within %v of its primary's crash", view, viewTimeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
		n.restart(primary)
	}
	_, primary, _ := n.currentView(-1)
	return primary == want
}

// currentView is the highest active view that f+1 = 2 running replicas
// (other than skip) report, and its primary.
func (n *nemesis) currentView(skip int) (view uint64, primary int, ok bool) {
	deadline := time.Now().Add(viewTimeout)
	for {
		count := map[uint64]int{}
		for i := range n.c.N {
			if i == skip || !n.c.Running(i) {
				continue
			}
			if st, err := n.c.Status(i); err == nil && st.ViewActive {
				count[st.View]++
			}
		}
		for v, c := range count {
			if c >= 2 && (!ok || v > view) {
				view, ok = v, true
			}
		}
		if ok {
			return view, int(protocol.Primary(view, n.c.N)), true
		}
		if time.Now().After(deadline) {
			return 0, 0, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
