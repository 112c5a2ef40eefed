package raftsim

import (
	"fmt"
	"testing"
)

// TestLedgerSeeds runs the built-in ledger (Config.Ledger) under crashes,
// wipes and partitions: every replica's ledger invariants hold before
// each index it applies and after every Process that applied one, the
// replicas agree on every entry and state digest, and the clients'
// mints, transfers and reads are linearizable against the ledger model.
// PBFTNODE_RAFTSIM_SEEDS raises the seed count (docs/testing.md).
func TestLedgerSeeds(t *testing.T) {
	for _, tc := range []struct {
		replicas      int
		normal, raced uint64
	}{{3, 150, 20}, {5, 50, 8}} {
		t.Run(fmt.Sprintf("n%d", tc.replicas), func(t *testing.T) {
			cfg := Config{Replicas: tc.replicas, Ledger: true}
			n := testSeeds(t, tc.normal, tc.raced)
			sum := requireClean(t, cfg, RunMany(cfg, 5000, n, 0))
			t.Logf("%d seeds: %d operations, %d state transfers, %d crashes, %d wipes, %d violations",
				sum.Runs, sum.Operations, sum.StateTransfers, sum.Crashes, sum.Wipes, sum.Violations)
			if sum.Operations == 0 || (n >= 20 && (sum.Crashes == 0 || sum.StateTransfers == 0)) {
				t.Fatalf("the ledger runs exercised too little: %+v", sum.Counters)
			}
		})
	}
}

func TestLedgerRefusesPlants(t *testing.T) {
	if err := (Config{Ledger: true, Plant: Plants[0]}).Validate(); err == nil {
		t.Fatal("a key-value plant was accepted in a ledger run")
	}
}
