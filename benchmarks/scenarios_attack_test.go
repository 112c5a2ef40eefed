package benchmarks

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The replica attacks give the agreed strategy to the agreed replica
// (a backup that is the primary of neither view 0 nor view 1 for the
// floods, the primary of view 0 for slow-primary), started inactive;
// the client attacks give no replica a strategy.
func TestAttackScenarioReplicaFlags(t *testing.T) {
	want := map[string]struct {
		replica  int
		strategy string
	}{
		ScenarioBadSignatureReplica: {3, "bad-signature-flood"},
		ScenarioStaleFloodReplica:   {3, "stale-flood"},
		ScenarioBatchRequestFlood:   {3, "batch-request-flood"},
		ScenarioSlowPrimary:         {0, "slow-primary"},
	}
	for _, scenario := range AttackScenarios {
		cfg := Config{Scenario: scenario, Replicas: 4, ByzantineStrategy: DefaultByzantineStrategy}
		byz, toggle := byzantineReplicas(cfg)
		cl := &cluster{spec: clusterSpec{byzantine: byz, toggle: toggle}, dir: "/t"}
		w, replicaAttack := want[scenario]
		for i := range 4 {
			args := strings.Join(cl.replicaArgs(i), " ")
			wantArgs := ""
			if replicaAttack && i == w.replica {
				wantArgs = "--byzantine " + w.strategy + " --byzantine-toggle"
			}
			if got := strings.Contains(args, "--byzantine"); got != (wantArgs != "") || !strings.Contains(args, wantArgs) {
				t.Errorf("%s: replica %d runs %q; want %q in it", scenario, i, args, wantArgs)
			}
		}
		plan, ok := planFor(scenario, 4)
		if !ok || (plan.client != "") == replicaAttack || (plan.client != "" && !slices.Contains(AttackKinds, plan.client)) {
			t.Errorf("%s: plan %+v, ok %v", scenario, plan, ok)
		}
	}
	// The byzantine scenario keeps its always-on strategy on replica 0.
	byz, toggle := byzantineReplicas(Config{Scenario: ScenarioByzantine, Replicas: 4, ByzantineStrategy: "withhold"})
	if byz[0] != "withhold" || len(byz) != 1 || toggle {
		t.Errorf("byzantine scenario: %v, toggle %v; want replica 0 withhold, no toggle", byz, toggle)
	}
}

// signalHelperEnv makes the test binary a signal catcher (see
// TestSignalCatcherHelper).
const signalHelperEnv = "PBFTNODE_BENCH_SIGNAL_HELPER"

// TestSignalCatcherHelper is not a test: run with signalHelperEnv set, it
// prints "ready", then a line for each SIGUSR1 or SIGUSR2, until SIGTERM.
func TestSignalCatcherHelper(t *testing.T) {
	if os.Getenv(signalHelperEnv) == "" {
		t.Skip("helper process for TestAttackSignals")
	}
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	fmt.Println("ready")
	for s := range ch {
		switch s {
		case syscall.SIGUSR1:
			fmt.Println("usr1")
		case syscall.SIGUSR2:
			fmt.Println("usr2")
		default:
			os.Exit(0)
		}
	}
}

// Switching a replica attack on sends SIGUSR1 to the attacking replica
// only, switching it off SIGUSR2.
func TestAttackSignals(t *testing.T) {
	for _, scenario := range []string{ScenarioStaleFloodReplica, ScenarioSlowPrimary} {
		plan, _ := planFor(scenario, 4)
		cl := &cluster{procs: make([]*replicaProc, 4)}
		lines := make([]chan string, 4)
		for i := range 4 {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalCatcherHelper$")
			cmd.Env = append(os.Environ(), signalHelperEnv+"=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			cl.procs[i] = &replicaProc{cmd: cmd, exited: make(chan struct{})}
			lines[i] = make(chan string, 8)
			go func() {
				defer close(lines[i])
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines[i] <- sc.Text()
				}
			}()
			if got := nextLine(lines[i]); got != "ready" {
				t.Fatalf("helper %d did not start: %q", i, got)
			}
		}
		r := &attackRun{plan: plan, cl: cl}
		// Each signal is awaited before the next is sent: signals pending
		// together may be delivered in any order.
		for _, step := range []struct {
			on   bool
			want string
		}{{true, "usr1"}, {false, "usr2"}} {
			if err := r.attack(step.on); err != nil {
				t.Fatal(err)
			}
			if got := nextLine(lines[plan.replica]); got != step.want {
				t.Fatalf("%s: replica %d got %q, want %q", scenario, plan.replica, got, step.want)
			}
		}
		for i := range 4 {
			_ = cl.procs[i].cmd.Process.Signal(syscall.SIGTERM)
			var got []string
			for l := range lines[i] {
				got = append(got, l)
			}
			if len(got) > 0 {
				t.Errorf("%s: replica %d got further signals %v, want none", scenario, i, got)
			}
		}
	}
}

// nextLine returns the next line from a helper, or "(none within 10 s)".
func nextLine(lines <-chan string) string {
	select {
	case l, ok := <-lines:
		if !ok {
			return "(exited)"
		}
		return l
	case <-time.After(10 * time.Second):
		return "(none within 10 s)"
	}
}

// attackJSONFields are the fields the acceptance check reads.
var attackJSONFields = []string{"scenario", "baseline_throughput_ops", "throughput_ops", "baseline_latency_p99_ms",
	"latency_p99_ms", "view_changes", "max_rss_growth_mib", "recovery_ms"}

// report fills in every field the acceptance check reads, from the
// phases' samples, even when they are zero: here the honest load stopped
// dead when the attack began and never came back.
func TestAttackReportFields(t *testing.T) {
	rec := &recorder{}
	for _, c := range evenly(0, time.Second, 1000) {
		rec.add(c, 2*time.Millisecond, false)
	}
	done := make(chan struct{})
	close(done)
	const mib = 1 << 20
	r := &attackRun{
		cfg:        Config{Scenario: ScenarioGarbageClient, Duration: time.Second, RecoveryCap: 3 * time.Second},
		ld:         &load{rec: rec},
		rss:        &rssSampler{cancel: func() {}, done: done, samples: map[int][]uint64{0: {100 * mib, 164 * mib}}},
		atAttack:   map[int]counters{0: {view: 2, dropped: map[string]float64{"malformed": 4}}, 1: {view: 2}},
		atStop:     map[int]counters{0: {view: 2, dropped: map[string]float64{"malformed": 10}}, 1: {view: 3}},
		atEnd:      map[int]counters{0: {view: 2}, 1: {view: 5}},
		rssBase:    map[int]uint64{0: 100 * mib},
		attackedAt: time.Second, stoppedAt: 2 * time.Second,
	}
	res := Result{Scenario: ScenarioGarbageClient}
	if err := r.report(&res); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteJSON(&b, []Result{res}); err != nil {
		t.Fatal(err)
	}
	for _, f := range attackJSONFields {
		if !strings.Contains(b.String(), `"`+f+`":`) {
			t.Errorf("no %q in %s", f, b.String())
		}
	}
	switch {
	case *res.BaselineThroughputOps != 1000 || res.ThroughputOps != 0:
		t.Errorf("throughput %v during the attack, baseline %v; want 0 and 1000", res.ThroughputOps, *res.BaselineThroughputOps)
	case *res.BaselineLatencyP99Ms != 2:
		t.Errorf("baseline p99 %v ms, want 2", *res.BaselineLatencyP99Ms)
	case res.ViewChanges != 3:
		t.Errorf("view changes %d, want 3 (the most any replica's view rose)", res.ViewChanges)
	case *res.MaxRSSGrowthMiB != 64:
		t.Errorf("RSS growth %v MiB, want 64", *res.MaxRSSGrowthMiB)
	case res.DroppedByReason["malformed"] != 6:
		t.Errorf("dropped %v during the attack, want malformed: 6 (even with no honest operation completed)", res.DroppedByReason)
	case *res.RecoveryMs != 3000 || *res.Recovered:
		t.Errorf("recovery %v ms (recovered %v), want the cap, 3000, and not recovered", *res.RecoveryMs, *res.Recovered)
	}
}
