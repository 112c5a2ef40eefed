package sim

import "testing"

// TestFastReads runs seeds where most gets go by the read-only path, with
// a Byzantine replica (n=4, one; n=7, two) forging its read answers, among
// concurrent writes and the usual faults: the history must stay
// linearizable (porcupine), agreement and liveness must hold, reads must
// have been answered fast in some seeds and forged answers sent.
func TestFastReads(t *testing.T) {
	for _, cfg := range []Config{{Replicas: 4, Byzantine: 1}, {Replicas: 7, Byzantine: 2}, {Replicas: 4}} {
		cfg.FastReads = 0.8
		t.Run(map[int]string{4: "n4", 7: "n7"}[cfg.Replicas]+map[int]string{0: "-correct", 1: "-byz1", 2: "-byz2"}[cfg.Byzantine], func(t *testing.T) {
			t.Parallel()
			n := testSeeds(t, 16)
			if cfg.Replicas == 7 {
				n = max(1, n/2)
			}
			results := RunMany(cfg, 1, n, 1)
			requireClean(t, cfg, results)
			var fast, fallbacks, forged uint64
			for _, r := range results {
				fast += r.FastReads
				fallbacks += r.ReadFallbacks
				forged += r.ForgedReads
			}
			t.Logf("%d seeds: %d fast reads, %d fallbacks, %d forged answers", n, fast, fallbacks, forged)
			if fast == 0 {
				t.Fatal("no read was answered on the read-only path")
			}
			if cfg.Byzantine > 0 && forged == 0 {
				t.Fatal("no Byzantine replica forged a read answer: the test proved nothing")
			}
		})
	}
}
