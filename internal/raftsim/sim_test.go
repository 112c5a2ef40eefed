package raftsim

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/pbftnode/pbftnode/internal/simkit"

	"github.com/pbftnode/pbftnode/internal/simkit/simtest"
)

// testSeeds is how many seeds a test runs: normal, or raced under the
// race detector (which slows the simulator about 10x), a quarter of normal with -short; PBFTNODE_RAFTSIM_SEEDS
// sets it for a long campaign.
func testSeeds(t *testing.T, normal, raced uint64) uint64 {
	t.Helper()
	return simtest.Seeds(t, "PBFTNODE_RAFTSIM_SEEDS", normal, raced, max(1, normal/4))
}

func requireClean(t *testing.T, cfg Config, results []Result) Summary {
	t.Helper()
	var sum Summary
	for _, r := range results {
		sum.Add(r)
		for _, v := range r.Violations {
			app := ""
			if cfg.Ledger {
				app = " --app ledger"
			}
			t.Errorf("%s\n  scenario: %s\n  replay: pbftnode sim --protocol raft --seeds 1 --start %d --replicas %d%s -v",
				v, r.Scenario, r.Seed, cfg.Replicas, app)
		}
	}
	return sum
}

func TestSeeds(t *testing.T) {
	for _, tc := range []struct {
		replicas      int
		normal, raced uint64
	}{{3, 400, 60}, {5, 150, 20}} {
		t.Run(fmt.Sprintf("n%d", tc.replicas), func(t *testing.T) {
			cfg := Config{Replicas: tc.replicas}
			n := testSeeds(t, tc.normal, tc.raced)
			sum := requireClean(t, cfg, RunMany(cfg, 1000, n, 0))
			t.Logf("%d seeds: %d operations, %d elections, %d snapshots, %d state transfers, %d crashes, %d wipes, %d partitions",
				sum.Runs, sum.Operations, sum.Elections, sum.Snapshots, sum.StateTransfers, sum.Crashes, sum.Wipes, sum.Partitions)
			if n < 20 {
				return // too few seeds to expect every fault
			}
			// The schedules must exercise what the checkers are for.
			for name, got := range map[string]uint64{"crashes": sum.Crashes, "partitions": sum.Partitions, "wipes": sum.Wipes,
				"snapshots": sum.Snapshots, "state transfers": sum.StateTransfers, "elections": sum.Elections - sum.Runs} {
				if got == 0 {
					t.Errorf("%d seeds had no %s", n, name)
				}
			}
		})
	}
}

func TestSameSeedSameResult(t *testing.T) {
	for _, cfg := range []Config{{Seed: 4242}, {Seed: 18}, {Seed: 69, Replicas: 5}, {Seed: 1, Scenario: ScenarioWipeNewLeader}} {
		a, b := Run(cfg), Run(cfg)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d ran differently:\n%+v\n%+v", cfg.Seed, a, b)
		}
		ja, errA := json.Marshal(a)
		jb, errB := json.Marshal(b)
		if errA != nil || errB != nil || string(ja) != string(jb) {
			t.Fatalf("seed %d: JSON differs (%v, %v):\n%s\n%s", cfg.Seed, errA, errB, ja, jb)
		}
		if a.Operations == 0 || a.Steps == 0 {
			t.Fatalf("seed %d did nothing: %+v", cfg.Seed, a)
		}
	}
	var s1, s2 Summary
	for _, r := range RunMany(Config{}, 7, 6, 2) {
		s1.Add(r)
	}
	for _, r := range RunMany(Config{}, 7, 6, 1) {
		s2.Add(r)
	}
	if !reflect.DeepEqual(s1, s2) {
		t.Fatalf("summaries differ with the number of workers:\n%+v\n%+v", s1, s2)
	}
}

// TestPlantedBugsAreCaught shows the checkers bite: with a planted bug,
// some seed among the first few reports the expected kind of violation,
// and that seed passes without the plant.
func TestPlantedBugsAreCaught(t *testing.T) {
	for _, tc := range []struct {
		plant, kind string
		limit       uint64
	}{
		{PlantAlterOp, simkit.KindAgreement, 5},
		// A stale read shows only when a lagging replica answers a get a
		// client sent it: about 1 seed in 20.
		{PlantStaleRead, simkit.KindLinearizability, 100},
	} {
		t.Run(tc.plant, func(t *testing.T) {
			cfg := Config{Plant: tc.plant}
			var caught *Result
			for start := uint64(1); start <= tc.limit && caught == nil; start += 10 {
				for _, r := range RunMany(cfg, start, 10, 0) {
					if len(r.Violations) > 0 && r.Violations[0].Kind == tc.kind {
						caught = &r
						break
					}
				}
			}
			if caught == nil {
				t.Fatalf("plant %s: no %s violation within %d seeds", tc.plant, tc.kind, tc.limit)
			}
			t.Logf("plant %s caught by seed %d: %.300s", tc.plant, caught.Seed, caught.Violations[0])
			clean := Config{Seed: caught.Seed}
			if res := Run(clean); len(res.Violations) > 0 {
				t.Fatalf("seed %d also fails without the plant: %s", caught.Seed, res.Violations[0])
			}
		})
	}
}

// TestWipeRejoinsUnderNewLeader: a follower loses its database once the
// leader's log is compacted, and the leader crashes with it; the wiped
// replica rejoins through snapshot state transfer from the new leader.
func TestWipeRejoinsUnderNewLeader(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		for _, n := range []int{3, 5} {
			cfg := Config{Seed: seed, Replicas: n, Scenario: ScenarioWipeNewLeader}
			res := Run(cfg)
			requireClean(t, cfg, []Result{res})
			if res.Wipes != 1 || res.StateTransfers == 0 {
				t.Errorf("seed %d n=%d: %d wipes, %d state transfers; want 1 wipe and a transfer (%s)", seed, n, res.Wipes, res.StateTransfers, res.Scenario)
			}
		}
	}
}

// TestWipeRejoinsUnderSameLeader: the same with the leader staying up.
// etcd raft alone panics on the wiped follower ("tocommit(N) is out of
// range [lastIndex(1)]": the leader still holds its old match index);
// raftmode's data-loss recovery (raftmode/dataloss.go) must hand
// leadership over and bring the follower back by snapshot.
func TestWipeRejoinsUnderSameLeader(t *testing.T) {
	cfg := Config{Seed: 1, Scenario: ScenarioWipe}
	res := Run(cfg)
	requireClean(t, cfg, []Result{res})
	if res.Wipes != 1 || res.StateTransfers == 0 {
		t.Errorf("%d wipes, %d state transfers; want 1 wipe and a transfer (%s)", res.Wipes, res.StateTransfers, res.Scenario)
	}
}

func TestValidate(t *testing.T) {
	for _, bad := range []Config{{Replicas: 10}, {Plant: "nope"}, {Scenario: "nope"}, {Replicas: 2, Scenario: ScenarioWipe}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: valid", bad)
		}
	}
	if res := Run(Config{Plant: "nope"}); len(res.Violations) != 1 || res.Violations[0].Kind != KindInternal {
		t.Errorf("an invalid config ran: %+v", res)
	}
}

// TestReadOnlyReadsStayLinearizable: the seeds' clients send a share of
// their operations read-only (the leader answers through ReadIndex, a
// follower or a write is refused and the client orders the operation),
// among writes, crashes and partitions; the histories stay linearizable.
func TestReadOnlyReadsStayLinearizable(t *testing.T) {
	for _, ledger := range []bool{false, true} {
		t.Run(fmt.Sprintf("ledger=%v", ledger), func(t *testing.T) {
			cfg := Config{Ledger: ledger}
			n := testSeeds(t, 200, 30)
			sum := requireClean(t, cfg, RunMany(cfg, 5000, n, 0))
			t.Logf("%d seeds: %d operations, %d fast reads, %d read fallbacks, %d crashes, %d partitions",
				sum.Runs, sum.Operations, sum.FastReads, sum.ReadFallbacks, sum.Crashes, sum.Partitions)
			if sum.FastReads == 0 || sum.ReadFallbacks == 0 {
				t.Errorf("%d seeds: %d fast reads, %d fallbacks; want both", n, sum.FastReads, sum.ReadFallbacks)
			}
		})
	}
}

// TestIsolatedLeaderServesNoStaleReads: the leader is cut off from the
// other replicas while the clients keep reading from it; the others elect
// a new leader and complete writes. The old leader must not answer a read
// (its ReadIndex round cannot complete): the freshness check and porcupine
// would see the stale answer.
func TestIsolatedLeaderServesNoStaleReads(t *testing.T) {
	for _, replicas := range []int{3, 5} {
		t.Run(fmt.Sprintf("n%d", replicas), func(t *testing.T) {
			cfg := Config{Replicas: replicas, Scenario: ScenarioIsolateLeader}
			n := testSeeds(t, 40, 8)
			sum := requireClean(t, cfg, RunMany(cfg, 1, n, 0))
			t.Logf("%d seeds: %d operations, %d fast reads, %d read fallbacks, %d elections",
				sum.Runs, sum.Operations, sum.FastReads, sum.ReadFallbacks, sum.Elections)
			if sum.FastReads == 0 || sum.Partitions != sum.Runs {
				t.Errorf("%d seeds: %d fast reads, %d isolations; want reads and one isolation per seed", n, sum.FastReads, sum.Partitions)
			}
		})
	}
}
