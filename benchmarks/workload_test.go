package benchmarks

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunLedgerEndToEnd runs a 2-second ledger benchmark on three Raft
// replica processes: the setup mints to every client's account, and
// every transfer the clients then send is executed (a refused one, e.g.
// for lack of funds, would count as failed).
func TestRunLedgerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the pbftnode binary and runs 3 replica processes for a few seconds; skipped under -short")
	}
	bin := buildPbftnode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Binary: bin, Protocol: "raft", App: AppLedger, NoFsync: true,
		Clients: 3, Window: 4,
		Duration: 2 * time.Second, Warmup: 300 * time.Millisecond,
		WorkDir: t.TempDir(), Keep: true,
	})
	if err != nil {
		t.Fatalf("bench run: %v", err)
	}
	t.Logf("%s: %.0f transfers/s, p50 %.2f ms", res.Label, res.ThroughputOps, res.LatencyP50Ms)
	if res.App != AppLedger || !strings.Contains(res.Label, "ledger") {
		t.Errorf("app %q, label %q: want the ledger named", res.App, res.Label)
	}
	if res.Ops <= 0 || res.FailedOps != 0 {
		t.Errorf("%d transfers executed, %d failed; want some and none", res.Ops, res.FailedOps)
	}
}
