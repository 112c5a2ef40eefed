package raftsim

import (
	"fmt"
	"testing"
)

// Reconfiguration under random faults: two spares added, a key rotated,
// one first member removed, on every seed, with agreement, linearizability, liveness and
// convergence checked as in every run; every change of the voters goes
// through a joint configuration, which is left, leaders crashing in some.
func TestReconfigurationSeeds(t *testing.T) {
	for _, tc := range []struct {
		replicas      int
		normal, raced uint64
	}{{3, 200, 30}, {1, 60, 10}} {
		t.Run(fmt.Sprintf("n%d", tc.replicas), func(t *testing.T) {
			cfg := Config{Replicas: tc.replicas, Reconfigure: true}
			n := testSeeds(t, tc.normal, tc.raced)
			sum := requireClean(t, cfg, RunMany(cfg, 5000, n, 0))
			t.Logf("%d seeds: %d operations, %d configuration changes, %d joint configurations entered, %d left, %d leaders crashed in one, %d state transfers, %d crashes, %d partitions",
				sum.Runs, sum.Operations, sum.ConfigChanges, sum.JointEntered, sum.JointLeft, sum.JointCrashes, sum.StateTransfers, sum.Crashes, sum.Partitions)
			if want := 4 * sum.Runs; sum.ConfigChanges != want {
				t.Errorf("%d configuration changes applied over %d runs, want %d", sum.ConfigChanges, sum.Runs, want)
			}
			// At least a promotion and the removal per run, each through a
			// joint configuration, and every one left.
			if sum.JointEntered < 2*sum.Runs || sum.JointLeft != sum.JointEntered {
				t.Errorf("%d joint configurations entered and %d left over %d runs, want at least %d, all left", sum.JointEntered, sum.JointLeft, sum.Runs, 2*sum.Runs)
			}
			if n >= 20 && sum.JointCrashes == 0 {
				t.Errorf("no leader crashed in a joint configuration over %d seeds", n)
			}
			if n >= 20 && (sum.Crashes == 0 || sum.Partitions == 0 || sum.StateTransfers == 0) {
				t.Errorf("%d seeds lacked crashes, partitions or state transfers", n)
			}
		})
	}
}
