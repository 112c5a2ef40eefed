package benchmarks

import (
	"context"
	"strings"
	"testing"
	"time"
)

// routineDrops are drop reasons an honest load causes by itself.
var routineDrops = map[string]bool{"duplicate": true, "stale": true, "checkpoint_rejected": true}

// TestBenchAttackGarbageClientEndToEnd runs the garbage-client attack
// scenario with 2 s phases on four replica processes and an attacker
// process: the attacker must report what it sent, the replicas must have
// dropped it (their drop counters grew during the attack beyond the
// routine reasons), and every field the acceptance check reads must be
// filled in.
func TestBenchAttackGarbageClientEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the pbftnode binary and runs 4 replica processes and an attacker; skipped under -short")
	}
	bin := buildPbftnode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Binary: bin, Protocol: "pbft", Replicas: 4, NoFsync: true, Scenario: ScenarioGarbageClient,
		Clients: 2, Window: 8, AttackRate: 20000,
		Duration: 2 * time.Second, Warmup: 500 * time.Millisecond, RecoveryCap: 3 * time.Second,
		WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("bench run: %v", err)
	}
	var b strings.Builder
	if err := WriteJSON(&b, []Result{res}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", b.String())
	for _, f := range attackJSONFields {
		if !strings.Contains(b.String(), `"`+f+`":`) {
			t.Errorf("no %q in the result", f)
		}
	}
	if res.BaselineThroughputOps == nil || *res.BaselineThroughputOps <= 0 || res.BaselineLatencyP99Ms == nil || *res.BaselineLatencyP99Ms <= 0 {
		t.Errorf("baseline %v ops/s, p99 %v ms: want both measured", res.BaselineThroughputOps, res.BaselineLatencyP99Ms)
	}
	if res.CryptoCeiling != nil {
		t.Error("an attack scenario measured the crypto ceiling")
	}
	a := res.Attack
	if a == nil || a.Kind != ScenarioGarbageClient || a.Frames < 1000 || a.Bytes <= a.Frames || a.Keys < garbageKeyCount || a.AttackS < 1 {
		t.Fatalf("attacker report %+v: want over 1000 frames from at least %d keys over the 2 s attack", a, garbageKeyCount)
	}
	var dropped float64
	for reason, n := range res.DroppedByReason {
		if !routineDrops[reason] {
			dropped += n
		}
	}
	if dropped < float64(a.Frames)/10 {
		t.Errorf("replicas dropped %v frames beyond routine drops during the attack (%v), the attacker sent %d: want its frames seen and dropped",
			dropped, res.DroppedByReason, a.Frames)
	}
}
