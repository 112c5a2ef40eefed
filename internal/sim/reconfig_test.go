package sim

import (
	"testing"
)

// TestReconfigureSeeds runs seeds with configuration changes (spares
// added, a member removed, a Byzantine one when there is one, a key
// rotated) among the workload, crashes, partitions and Byzantine
// strategies: agreement, exactly-once, linearizability and the members'
// agreement on the configuration history hold, and the changes happen.
func TestReconfigureSeeds(t *testing.T) {
	for _, byz := range []int{0, 1} {
		cfg := Config{Replicas: 4, Byzantine: byz, Reconfigure: true}
		results := RunMany(cfg, 1, testSeeds(t, 30), 0)
		requireClean(t, cfg, results)
		var changes, rotations uint64
		for _, r := range results {
			changes += r.ConfigChanges
			rotations += r.Rotations
		}
		if !raceEnabled() && !testing.Short() && (changes < uint64(len(results)) || rotations == 0) {
			t.Errorf("byzantine=%d: %d configuration changes and %d key rotations in %d runs: the runs do not reconfigure",
				byz, changes, rotations, len(results))
		}
	}
}
