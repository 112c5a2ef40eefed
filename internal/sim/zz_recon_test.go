package sim

import "testing"

func TestReconfigureQuick(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := Run(Config{Seed: seed, Reconfigure: true, Byzantine: 1})
		t.Logf("seed %d: %s changes=%d rot=%d ops=%d viol=%v", seed, r.Scenario, r.ConfigChanges, r.Rotations, r.Operations, r.Violations)
	}
}
