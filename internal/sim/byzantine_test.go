package sim

import (
	"encoding/json"
	"testing"

	"github.com/pbftnode/pbftnode/byzantine"
)

// newStrategies are the byzantine strategies driven by the node's tick
// hooks (Injector, Delayer), which the simulator drives from its ticks.
var newStrategies = []string{
	byzantine.StrategyBadSignatureFlood, byzantine.StrategyStaleFlood,
	byzantine.StrategyBatchRequestFlood, byzantine.StrategySlowPrimary,
}

// TestTickDrivenStrategies runs seeds in which every Byzantine replica
// runs one of the tick-driven strategies, n=4 with one and n=7 with two:
// agreement, linearizability and liveness must hold, and the strategy
// must have acted (a flood in every seed, slow-primary in some: it acts
// only while primary). Without the simulator driving the hooks, the
// floods inject nothing and slow-primary delays nothing.
func TestTickDrivenStrategies(t *testing.T) {
	for _, strategy := range newStrategies {
		for _, cfg := range []Config{{Replicas: 4, Byzantine: 1}, {Replicas: 7, Byzantine: 2}} {
			cfg.Strategy = strategy
			t.Run(strategy+map[int]string{4: "-n4", 7: "-n7"}[cfg.Replicas], func(t *testing.T) {
				t.Parallel()
				n := testSeeds(t, 12)
				if cfg.Replicas == 7 {
					n = max(1, n/2)
				}
				results := RunMany(cfg, 1, n, 1)
				requireClean(t, cfg, results)
				var acted uint64
				var rejected uint64
				for _, r := range results {
					if r.ByzantineActions == 0 && strategy != byzantine.StrategySlowPrimary {
						t.Errorf("seed %d: %s injected nothing; scenario: %s", r.Seed, strategy, r.Scenario)
					}
					acted += r.ByzantineActions
					rejected += r.RejectedFrames
				}
				if acted == 0 {
					t.Fatalf("%s acted in none of %d seeds", strategy, n)
				}
				// Some forged frames are lost (drops, partitions, replicas down).
				if strategy == byzantine.StrategyBadSignatureFlood && rejected < acted/2 {
					t.Fatalf("%d frames rejected for %d forged", rejected, acted)
				}
			})
		}
	}
}

// TestTickDrivenStrategiesReplayExactly runs one seed of each strategy
// twice: the injections and delays follow the simulator's ticks, so the
// results must be identical.
func TestTickDrivenStrategiesReplayExactly(t *testing.T) {
	for _, strategy := range newStrategies {
		cfg := Config{Seed: 7, Replicas: 4, Byzantine: 1, Strategy: strategy}
		a, _ := json.Marshal(Run(cfg))
		b, _ := json.Marshal(Run(cfg))
		if string(a) != string(b) {
			t.Errorf("%s: seed 7 replayed differently:\n  %s\n  %s", strategy, a, b)
		}
	}
}
