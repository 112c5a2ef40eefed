package raftsim

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/statetransfer"
)

// Planted bugs, test-only faults in the simulated replicas that the
// checkers must catch (see Config.Plant).
const (
	// PlantAlterOp makes replica 0's application store a different value
	// for every put it executes (a replica that diverges from the log).
	PlantAlterOp = "alter-op"
	// PlantStaleRead makes every replica answer a get from its own state
	// the moment the request arrives, without ordering it through the log.
	PlantStaleRead = "stale-read"
)

// Plants lists the planted bugs Config.Plant accepts.
var Plants = []string{PlantAlterOp, PlantStaleRead}

// Scenarios: Config.Scenario.
const (
	// ScenarioRandom (the default) draws faults from the seed.
	ScenarioRandom = ""
	// ScenarioWipe is the dedicated data-loss scenario: no network faults
	// and no crashes; once the leader has taken two snapshots (so its log
	// is compacted past the start), a follower loses its whole database
	// and restarts, and must rejoin through snapshot state transfer while
	// the leader keeps leading.
	ScenarioWipe = "wipe"
	// ScenarioWipeNewLeader is ScenarioWipe with the leader crashing at
	// the moment of the wipe (it restarts WipeLeaderDownTicks later), so
	// that the wiped replica rejoins under a new leader.
	ScenarioWipeNewLeader = "wipe-new-leader"
	// ScenarioIsolateLeader is the read-only path's scenario: no other
	// faults; once the clients have run a while, the leader is cut off
	// from the other replicas (not from the clients) for IsolateTicks, so
	// that the others elect a new leader and complete writes while
	// clients still send reads to the old one, which must not answer them
	// from its stale state. Most operations go read-only.
	ScenarioIsolateLeader = "isolate-leader"
)

// Scenarios lists the scenarios Config.Scenario accepts.
var Scenarios = []string{ScenarioRandom, ScenarioWipe, ScenarioWipeNewLeader, ScenarioIsolateLeader}

// Timing of every simulated replica and client, in ticks.
const (
	// ElectionTicks and HeartbeatTicks configure raftmode: a follower
	// campaigns after a random time in [ElectionTicks, 2*ElectionTicks)
	// without a leader.
	ElectionTicks  = 30
	HeartbeatTicks = 5
	// TransferIdleTicks is how long a state transfer waits for a chunk
	// before asking the next peer: the runtimes' own.
	TransferIdleTicks = statetransfer.DefaultIdleTicks
	// TransferChunkBytes is small so that transfers take several chunks.
	TransferChunkBytes = 256
	// WipeSettleTicks is how long after calm a random schedule waits
	// before it may wipe a replica (longer than any message stays in
	// flight, so no message from before calm is left).
	WipeSettleTicks = 200
	// WipeLeaderDownTicks is how long the leader stays down when a wipe
	// crashes it too.
	WipeLeaderDownTicks = 100
	// IsolateFromTicks is when ScenarioIsolateLeader may cut the leader
	// off (once there is a stable one), and IsolateTicks for how long.
	IsolateFromTicks = 100
	IsolateTicks     = 400
)

// LivenessBound returns the number of ticks within which, once the
// schedule is calm (and after the last wipe), every pending client
// operation must complete, and the replicas must converge once the
// clients are done. It allows ten election rounds of the longest timeout
// (split votes), a state transfer that tries every peer once with its idle
// timeout, the clients' longest retransmission interval, and generous
// round trips.
func LivenessBound(n int) int64 {
	return 10*2*ElectionTicks + int64(n)*TransferIdleTicks + 8*simkit.ClientTimeoutTicks + 50*simkit.MaxNetworkDelay
}

// Config configures one simulated run.
type Config struct {
	// Seed decides the whole run.
	Seed uint64
	// Replicas is n: 3 or 5 (default 3); 1 to 9 run.
	Replicas int
	// Plant, when set, is one of Plants.
	Plant string
	// Scenario is one of Scenarios.
	Scenario string
	// PlainWipes makes the wipes of random schedules leave the leader
	// running (by default a wipe also crashes the leader, as in
	// ScenarioWipeNewLeader; see docs/testing.md for why).
	PlainWipes bool
	// Ledger runs the built-in ledger (package ledger) instead of the
	// key-value store: client 0's ID is the only issuer key, the clients
	// mint, transfer and read (internal/ledgermodel, whose model the
	// history is checked against), and every replica's ledger invariants
	// are checked before it applies each index and after every Process
	// that applied something. The plants alter and read key-value
	// operations: they need the key-value store.
	Ledger bool
	// Reconfigure runs a reconfiguration (reconfig.go): ReconfigSpares
	// spares beside the Replicas members, added one by one while the
	// clients run, then one of the first members removed. Random
	// schedules only; no wipes.
	Reconfigure bool
	// MaxSteps caps a run's steps (default DefaultMaxSteps); a run that
	// reaches it with work pending is a violation.
	MaxSteps uint64
	// Logger receives debug logs of the run and the replicas; nil
	// discards them.
	Logger *slog.Logger
	// Verbose adds every replica's raft status to failure reports.
	Verbose bool
}

// DefaultMaxSteps is Config.MaxSteps' default.
const DefaultMaxSteps = simkit.DefaultMaxSteps

func (c Config) withDefaults() Config {
	simkit.Defaults(&c.Replicas, 3, &c.MaxSteps, &c.Logger)
	return c
}

// Validate reports a configuration the simulator cannot run.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Replicas < 1 || c.Replicas > 9 {
		return fmt.Errorf("raftsim: %d replicas; want 1 to 9 (3 or 5 are tested)", c.Replicas)
	}
	if c.Plant != "" && !slices.Contains(Plants, c.Plant) {
		return fmt.Errorf("raftsim: unknown plant %q (known: %v)", c.Plant, Plants)
	}
	if c.Plant != "" && c.Ledger {
		return fmt.Errorf("raftsim: plant %q needs the key-value store, not the ledger", c.Plant)
	}
	if !slices.Contains(Scenarios, c.Scenario) {
		return fmt.Errorf("raftsim: unknown scenario %q (known: %q)", c.Scenario, Scenarios)
	}
	if c.Reconfigure && c.Scenario != ScenarioRandom {
		return fmt.Errorf("raftsim: reconfiguration runs use random schedules, not scenario %q", c.Scenario)
	}
	if c.Scenario != ScenarioRandom && c.Replicas < 3 {
		return fmt.Errorf("raftsim: the dedicated scenarios need at least 3 replicas, not %d", c.Replicas)
	}
	return nil
}

// Counters are what a run counts (simkit.Progress first, simkit.Work
// last); a Summary adds them up over runs.
type Counters struct {
	simkit.Progress
	// Elections counts the terms in which some replica became leader.
	Elections uint64 `json:"elections"`
	// Snapshots counts the snapshots the replicas took (Output.Snapshot).
	Snapshots      uint64 `json:"snapshots"`
	StateTransfers uint64 `json:"state_transfers"`
	Crashes        uint64 `json:"crashes"`
	Wipes          uint64 `json:"wipes"`
	// WaitingRestarts counts restarts whose Core was built waiting for
	// state (a crash during a state transfer, or a log that starts after
	// the application state).
	WaitingRestarts uint64 `json:"waiting_restarts"`
	Partitions      uint64 `json:"partitions"`
	// FastReads counts operations answered on the read-only path
	// (ReadIndex); ReadFallbacks read-only requests refused and then
	// ordered.
	FastReads     uint64 `json:"fast_reads"`
	ReadFallbacks uint64 `json:"read_fallbacks"`
	// ConfigChanges counts the configuration changes applied
	// (Config.Reconfigure).
	ConfigChanges uint64 `json:"config_changes"`
	// JointEntered and JointLeft count the joint configurations (changes
	// of raft's voters) some replica entered and some replica left;
	// JointCrashes the leaders crashed just after entering one (joint.go).
	JointEntered uint64 `json:"joint_entered"`
	JointLeft    uint64 `json:"joint_left"`
	JointCrashes uint64 `json:"joint_crashes"`
	Messages     uint64 `json:"messages"`
	Dropped      uint64 `json:"dropped"`
	simkit.Work
}

// Summary adds up runs.
type Summary struct {
	Counters
	simkit.Tally
}

// Add adds r to s.
func (s *Summary) Add(r Result) {
	simkit.Summarize(&s.Counters, &s.Tally, r.Counters, r.Seed, r.Violations)
}
