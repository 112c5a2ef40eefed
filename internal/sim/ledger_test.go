package sim

import (
	"fmt"
	"testing"
)

// TestLedgerSeeds runs the built-in ledger (Config.Ledger) with Byzantine
// replicas and crashes: every correct replica's ledger invariants hold
// after every batch it executes or state it installs, the replicas agree,
// and the clients' mints, transfers and reads are linearizable against
// the ledger model. PBFTNODE_SIM_SEEDS raises the seed count for a long
// campaign (docs/testing.md).
func TestLedgerSeeds(t *testing.T) {
	for _, cfg := range []Config{
		{Replicas: 4, Byzantine: 1, Ledger: true},
		{Replicas: 7, Byzantine: 2, Ledger: true},
	} {
		t.Run(fmt.Sprintf("n%d-byz%d", cfg.Replicas, cfg.Byzantine), func(t *testing.T) {
			n := testSeeds(t, 200)
			if cfg.Replicas == 7 {
				n = max(1, n/4)
			}
			results := RunMany(cfg, 5000, n, 0)
			requireClean(t, cfg, results)
			var s Summary
			for _, r := range results {
				s.Add(r)
			}
			if s.Operations == 0 || s.Crashes == 0 {
				t.Fatalf("the ledger runs did nothing or crashed nothing: %+v", s.Counters)
			}
			t.Logf("%d seeds: %d operations, %d crashes, %d view changes, %d state transfers, %d violations",
				n, s.Operations, s.Crashes, s.ViewChanges, s.StateTransfers, s.Violations)
		})
	}
}
