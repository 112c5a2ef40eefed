package sim

import (
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/protocol"
)

// Planted bugs: unsafe quorum settings applied to the correct replicas (or,
// for the tentative replies, to the clients), to show that the checkers
// catch them (see Config.Plant).
const (
	// PlantPrepareQuorum makes a slot prepared with f matching prepares
	// instead of 2f.
	PlantPrepareQuorum = "prepare-quorum"
	// PlantCommitQuorum commits with f+1 matching commits instead of 2f+1.
	PlantCommitQuorum = "commit-quorum"
	// PlantViewChangeQuorum builds and accepts a NEW-VIEW from f+1
	// VIEW-CHANGEs instead of 2f+1.
	PlantViewChangeQuorum = "viewchange-quorum"
	// PlantTentativeQuorum makes the clients that accept tentative
	// replies accept f+1 matching replies of one view and sequence
	// instead of 2f+1.
	PlantTentativeQuorum = "tentative-quorum"
)

// Plants lists the planted bugs Config.Plant accepts.
var Plants = []string{PlantPrepareQuorum, PlantCommitQuorum, PlantViewChangeQuorum, PlantTentativeQuorum}

// Protocol timing used by every simulated replica, in ticks.
const (
	// ViewChangeTimeoutTicks is the replicas' view-change timeout (it
	// doubles on consecutive view changes, up to MaxTimeoutDoublings).
	ViewChangeTimeoutTicks = 40
	// MaxTimeoutDoublings is the protocol's cap on the view-change timeout:
	// at most 64 times ViewChangeTimeoutTicks.
	MaxTimeoutDoublings = 64
	// RetransmitTicks is the replicas' retransmission timeout.
	RetransmitTicks = 40
	// CheckpointInterval and WindowSize are small so that checkpoints,
	// garbage collection and state transfer happen in every run.
	CheckpointInterval = 8
	WindowSize         = 16
	// FloodFramesPerTick is the byzantine floods' rate in the simulator,
	// scaled down from a real replica's (byzantine.DefaultFramesPerTick)
	// so that a campaign stays fast: one frame a tick to some other
	// replica.
	FloodFramesPerTick = 1
)

// LivenessBound returns the number of ticks within which, once the
// schedule is calm, every pending client operation must complete (counted
// from the later of the calm tick and the operation's call). After calm, a
// replica may still be in a view change whose timer has doubled to its cap
// (64 x ViewChangeTimeoutTicks); then at most f further views can have a
// Byzantine primary, each costing one capped timeout; one more timeout
// covers the new primary's first round. Clients need up to 8 x
// simkit.ClientTimeoutTicks to rebroadcast, and agreement, fetch and state
// transfer take a few network round trips each (bounded generously by
// 50 x simkit.MaxNetworkDelay per view).
func LivenessBound(n int) int64 {
	f := int64(protocol.FaultTolerance(n))
	views := f + 2
	return views*(MaxTimeoutDoublings*ViewChangeTimeoutTicks+50*simkit.MaxNetworkDelay) + 8*simkit.ClientTimeoutTicks
}

// Config configures one simulated run.
type Config struct {
	// Seed decides the whole run.
	Seed uint64
	// Replicas is n: 4 or 7 (default 4).
	Replicas int
	// Byzantine is K, how many replicas misbehave (at most f).
	Byzantine int
	// Strategy, when set, is the strategy every Byzantine replica runs
	// (one of byzantine.Strategies or the simulator's own), alone; unset,
	// each seed draws one.
	Strategy string
	// Plant, when set, is one of Plants, applied to the correct replicas.
	Plant string
	// Ledger runs the built-in ledger (package ledger) instead of the
	// key-value store: client 0's key is the only issuer key, the clients
	// mint, transfer and read (internal/ledgermodel, whose model the
	// history is checked against), and every correct replica's ledger
	// invariants are checked after every batch it executes, every state it
	// installs and every restart (nothing else changes its state).
	Ledger bool
	// FastReads is the probability that a key-value get goes by the
	// read-only path (0: never, every get is ordered). Byzantine replicas
	// then answer reads with forged or stale results.
	FastReads float64
	// Reconfigure runs configuration changes among the workload (see
	// reconfig.go): Spares more hosts start as non-members, an
	// administrator adds and removes members and rotates a key. Fast
	// reads are off in these runs; Twins' sides include the spares.
	Reconfigure bool
	// MaxSteps caps a run's steps (default DefaultMaxSteps); a run that
	// reaches it with operations pending is a violation.
	MaxSteps uint64
	// Logger receives debug logs of the run; nil discards them.
	Logger *slog.Logger
	// Verbose adds every replica's log to failure reports.
	Verbose bool
	// Trace, when set, receives one line per delivered event and per
	// message sent (debugging: two runs of a seed must trace alike).
	Trace io.Writer
}

// DefaultMaxSteps is Config.MaxSteps' default.
const DefaultMaxSteps = simkit.DefaultMaxSteps

func (c Config) withDefaults() Config {
	simkit.Defaults(&c.Replicas, 4, &c.MaxSteps, &c.Logger)
	if c.Reconfigure {
		c.FastReads = 0
	}
	return c
}

// Validate reports a configuration the simulator cannot run.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Replicas < 4 || c.Replicas > 16 {
		return fmt.Errorf("sim: %d replicas; want 4 to 16 (4 or 7 are tested)", c.Replicas)
	}
	if f := protocol.FaultTolerance(c.Replicas); c.Byzantine < 0 || c.Byzantine > f {
		return fmt.Errorf("sim: %d Byzantine replicas among %d; want 0 to f = %d", c.Byzantine, c.Replicas, f)
	}
	if c.Strategy != "" && !slices.Contains(AllStrategies(), c.Strategy) {
		return fmt.Errorf("sim: unknown strategy %q (known: %v)", c.Strategy, AllStrategies())
	}
	if c.Plant != "" && !slices.Contains(Plants, c.Plant) {
		return fmt.Errorf("sim: unknown plant %q (known: %v)", c.Plant, Plants)
	}
	return nil
}

// Counters are what a run counts (simkit.Progress first, simkit.Work
// last); a Summary adds them up over runs.
type Counters struct {
	simkit.Progress
	ViewChanges    uint64 `json:"view_changes"`
	Checkpoints    uint64 `json:"checkpoints"`
	StateTransfers uint64 `json:"state_transfers"`
	Crashes        uint64 `json:"crashes"`
	// TornCrashes counts crashes of a primary between sending its
	// PRE-PREPAREs (Outbound.BeforePersist) and persisting them.
	TornCrashes uint64 `json:"torn_crashes"`
	// LostLogEntries counts the log entries a crash lost that the replica
	// had written without a sync (replica.Storage.WriteLog): a crash is a
	// power loss, keeping a random prefix of them.
	LostLogEntries uint64 `json:"lost_log_entries"`
	Partitions     uint64 `json:"partitions"`
	Messages       uint64 `json:"messages"`
	Dropped        uint64 `json:"dropped"`
	RejectedFrames uint64 `json:"rejected_frames"`
	// Prechecked counts verified frames the runtime's pre-check
	// (protocol.AdmitNormalCase) dropped before they reached the core:
	// stale, beyond the window, or PREPAREs of sequences already prepared.
	Prechecked       uint64 `json:"prechecked"`
	ByzantineActions uint64 `json:"byzantine_actions"`
	// FastReads counts reads answered by 2f+1 read-only answers,
	// ReadFallbacks reads ordered instead, ForgedReads the read-only
	// answers Byzantine replicas forged (Config.FastReads).
	FastReads     uint64 `json:"fast_reads,omitempty"`
	ReadFallbacks uint64 `json:"read_fallbacks,omitempty"`
	ForgedReads   uint64 `json:"forged_reads,omitempty"`
	// TentativeAccepts counts operations a client accepted on 2f+1
	// replies of one view and sequence with at least one tentative
	// (wire.Reply.tentative), TentativeDiscarded the tentative
	// executions executed again or replaced at their commit (by the
	// drivers of the correct replicas up at the end).
	TentativeAccepts   uint64 `json:"tentative_accepts,omitempty"`
	TentativeDiscarded uint64 `json:"tentative_discarded,omitempty"`
	// ConfigChanges counts configuration changes applied, Rotations the
	// replicas restarted with a rotated key (Config.Reconfigure).
	ConfigChanges uint64 `json:"config_changes,omitempty"`
	Rotations     uint64 `json:"rotations,omitempty"`
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
