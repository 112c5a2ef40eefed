package raftsim

import (
	"fmt"
	"testing"
)

// Reconfiguration under random faults: two spares added, a key rotated,
// one first member removed, on every seed, with agreement, linearizability, liveness and
// convergence checked as in every run.
func TestReconfigurationSeeds(t *testing.T) {
	for _, tc := range []struct {
		replicas      int
		normal, raced uint64
	}{{3, 200, 30}, {1, 60, 10}} {
		t.Run(fmt.Sprintf("n%d", tc.replicas), func(t *testing.T) {
			cfg := Config{Replicas: tc.replicas, Reconfigure: true}
			n := testSeeds(t, tc.normal, tc.raced)
			sum := requireClean(t, cfg, RunMany(cfg, 5000, n, 0))
			t.Logf("%d seeds: %d operations, %d configuration changes, %d state transfers, %d crashes, %d partitions",
				sum.Runs, sum.Operations, sum.ConfigChanges, sum.StateTransfers, sum.Crashes, sum.Partitions)
			if want := 4 * sum.Runs; sum.ConfigChanges != want {
				t.Errorf("%d configuration changes applied over %d runs, want %d", sum.ConfigChanges, sum.Runs, want)
			}
			if n >= 20 && (sum.Crashes == 0 || sum.Partitions == 0 || sum.StateTransfers == 0) {
				t.Errorf("%d seeds lacked crashes, partitions or state transfers", n)
			}
		})
	}
}
