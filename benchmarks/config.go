package benchmarks

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/pbftnode/pbftnode/byzantine"
)

// Scenarios a run can inject.
const (
	ScenarioNone        = "none"         // no fault
	ScenarioCrashBackup = "crash-backup" // a non-leader replica is killed before measuring
	ScenarioCrashLeader = "crash-leader" // the primary or leader is killed a third of the way in
	ScenarioByzantine   = "byzantine"    // one replica runs a byzantine strategy (PBFT only)
)

// Scenarios lists the scenario names: the faults above and
// AttackScenarios.
var Scenarios = append([]string{ScenarioNone, ScenarioCrashBackup, ScenarioCrashLeader, ScenarioByzantine}, AttackScenarios...)

// DefaultByzantineStrategy is the strategy of the byzantine scenario: the
// view-0 primary (replica 0) sends each backup a different pre-prepare for
// the same sequence. It is the most damaging strategy PBFT tolerates: no
// batch prepares until the backups' view-change timer replaces the
// primary, after which the equivocator stays in the cluster as a backup
// (see docs/benchmarks.md for the comparison with the other strategies).
const DefaultByzantineStrategy = "equivocate"

// The default closed loop: 16 clients with 64 operations outstanding each
// saturate both modes on a 2-core machine (fewer leave PBFT's batches
// small; more only add queueing in the clients).
const (
	DefaultClients = 16
	DefaultWindow  = 64
)

// Payload sizes the workload supports (bytes of each put's value).
var PayloadSizes = []int{16, 1024, 4096}

// Config is one benchmark configuration. Zero values take the defaults
// noted on each field.
type Config struct {
	// Binary is the pbftnode executable the replicas run (default: this
	// process's executable, os.Executable).
	Binary string
	// Protocol is "pbft" (default), "raft", or ProtocolFloor.
	Protocol string
	// App is the replicated application: AppKV (default; puts of Payload
	// bytes on Keys keys, GetRatio gets) or AppLedger (the built-in
	// ledger: the setup mints to every client's account, then each client
	// transfers one unit at a time to the next client's account;
	// GetRatio of the operations read the client's balance instead).
	App string
	// Replicas is n (default 4 for PBFT, 3 for Raft; with Peer, 3 etcd
	// members or 4 CometBFT validators).
	Replicas int
	// Peer, when set, measures a peer system instead of pbftnode under the
	// same load: PeerEtcd or PeerCometBFT (see peer.go). Protocol is then
	// the peer's name; the pbftnode-only fields (App, Scenario, receipts,
	// profiles, log level) must keep their defaults.
	Peer string
	// PeerBinary is the peer's executable (default: looked up on PATH,
	// and for CometBFT also in $(go env GOPATH)/bin).
	PeerBinary string
	// CometBFTTimeoutCommit is the CometBFT validators' timeout_commit
	// (default DefaultCometBFTTimeoutCommit).
	CometBFTTimeoutCommit time.Duration
	// NoFsync turns fsync off on every replica (--unsafe-no-fsync).
	NoFsync bool
	// NoReceipts turns the PBFT replicas' receipts off (testnet
	// --no-receipts): no signature per batch, to measure their cost.
	NoReceipts bool
	// CheckDirectCommits makes the PBFT replicas check every COMMIT's
	// signature, even one its author's own session delivered (testnet
	// --check-direct-commits), to measure what the default saves.
	CheckDirectCommits bool
	// ReceiptsCachedOnly writes the testnet with receipts only on replies
	// from the reply cache (testnet --receipts-cached-only).
	ReceiptsCachedOnly bool
	// AskReceipts makes every write ask for a receipt and wait for f+1
	// valid ones (client.InvokeWithReceipt), as a client that keeps
	// receipts does; by default the load's clients ask for none, so the
	// replicas sign none (docs/receipts.md). PBFT, with receipts on.
	AskReceipts bool
	// CommittedRepliesOnly makes the load's clients ask for no tentative
	// replies (client.Config.CommittedRepliesOnly): every result waits for
	// f+1 committed replies, to measure what tentative replies save.
	CommittedRepliesOnly bool
	// ReplicaLogLevel, when set, is passed to every replica as
	// --log-level (e.g. "debug", with --keep, to study a run's logs).
	ReplicaLogLevel string
	// CPUProfileDir, when set, makes every replica write a CPU profile
	// of its whole life to DIR/nodeI.pprof (run --cpuprofile) and the
	// bench process one of its clients to DIR/harness.pprof: for
	// `go tool pprof`.
	CPUProfileDir string
	// Scenario is one of Scenarios (default none).
	Scenario string
	// ByzantineStrategy is the byzantine scenario's strategy (default
	// DefaultByzantineStrategy).
	ByzantineStrategy string
	// AttackRate bounds an attacking client's rate, in its kind's unit
	// (`pbftnode attack --rate`; 0: the kind's default).
	AttackRate float64
	// RecoveryCap bounds how long an attack scenario waits, after the
	// attack stops, for the honest throughput to recover; a run that
	// never recovers reports it as recovery_ms (default 15 s).
	RecoveryCap time.Duration

	// Clients is the number of logical clients, each a closed-loop
	// requester with Window operations outstanding (default
	// DefaultClients).
	Clients int
	// Connections is how many connections the logical clients share,
	// round robin, the same rule for every system: for pbftnode that many
	// client.Client instances (each its own key, session and connections
	// to every replica) with the outstanding operations of the logical
	// clients they carry, for etcd that many clientv3 clients. 0 is
	// DefaultConnections; it is raised to one per logical client for the
	// ledger and the attack scenarios (accounts and attack budgets are per
	// key), and for pbftnode to at least Clients*Window/64 (the replicas'
	// per-client bound). CometBFT's connections are per RPC call
	// (cometbftConnsPerNode).
	Connections int
	// Window is each client's outstanding operations in the closed loop
	// (at most 64, the replicas' per-client bound). The default is
	// DefaultWindow, or 1 with a single client: one client then measures
	// the light-load latency, one operation at a time.
	Window int
	// Rate, when positive, runs the open loop: operations are issued at
	// this many per second regardless of completions, spread over the
	// clients, at most Clients*Window outstanding (later ones are
	// dropped and counted).
	Rate float64
	// GetRatio is the fraction of gets; the rest are puts (default 0).
	GetRatio float64
	// Payload is the size of each put's value: 16, 1024 or 4096 (default 16).
	Payload int
	// Keys is the size of the key space (default 10000).
	Keys int

	// Duration is the measured interval (default 10 s).
	Duration time.Duration
	// Warmup runs the load before measuring (default 1.5 s, negative:
	// none; the byzantine scenario measures from the start, so that its
	// fault is counted).
	Warmup time.Duration
	// CeilingDuration is how long the crypto ceiling is measured before a
	// PBFT cluster starts (default 2 s; negative: not measured).
	CeilingDuration time.Duration
	// ClientRetransmit is the clients' retransmission timeout (default
	// 500 ms, as `pbftnode client` uses).
	ClientRetransmit time.Duration
	// QuietWait, when positive, makes the run first wait (at most this
	// long) until other work leaves the machine nearly idle (below a
	// quarter of a core over a second). --compare waits up to 60 s.
	QuietWait time.Duration
	// Seed seeds the workload's key and operation choice (default 1).
	Seed uint64

	// WorkDir holds the testnet directories (default: a new temporary
	// directory, removed afterwards unless Keep).
	WorkDir string
	Keep    bool
	// Label names the configuration in tables and plots (default derived).
	Label string
	// Logger receives the harness's own logs (default: discarded).
	Logger *slog.Logger
	// Progress, when not nil, receives a progress line every second.
	Progress io.Writer
}

// withDefaults fills in zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("locate the pbftnode binary: %w", err)
		}
		c.Binary = exe
	}
	if c.Protocol == "" {
		c.Protocol = "pbft"
	}
	if c.Peer != "" {
		c.Protocol = c.Peer
	}
	if c.App == "" {
		c.App = AppKV
	}
	if c.Replicas == 0 {
		c.Replicas = 4
		if c.Protocol == "raft" || c.Protocol == PeerEtcd {
			c.Replicas = 3
		}
	}
	if c.CometBFTTimeoutCommit == 0 {
		c.CometBFTTimeoutCommit = DefaultCometBFTTimeoutCommit
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioNone
	}
	if c.ByzantineStrategy == "" {
		c.ByzantineStrategy = DefaultByzantineStrategy
	}
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
		if c.Clients == 1 {
			c.Window = 1
		}
	}
	c.Connections = c.connections()
	if c.Payload == 0 {
		c.Payload = 16
	}
	if c.Keys == 0 {
		c.Keys = 10000
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = 1500 * time.Millisecond
	case c.Warmup < 0:
		c.Warmup = 0
	}
	if c.Scenario == ScenarioByzantine {
		c.Warmup = 0
	}
	if c.CeilingDuration == 0 {
		c.CeilingDuration = 2 * time.Second
	}
	if isAttack(c.Scenario) {
		// The crypto ceiling costs time and says nothing about an attack.
		c.CeilingDuration = -1
	}
	if c.RecoveryCap <= 0 {
		c.RecoveryCap = 15 * time.Second
	}
	if c.ClientRetransmit == 0 {
		c.ClientRetransmit = 500 * time.Millisecond
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Label == "" {
		c.Label = c.defaultLabel()
	}
	return c, c.validate()
}

// ProtocolFloor is the benchmark's third "protocol": PBFT's data path
// without agreement (replicas run `pbftnode run --benchmark-floor`,
// floor.Node). Every replica verifies each client signature and
// answers, the primary relays the requests in signed PRE-PREPAREs, and
// nothing is prepared, committed, persisted or executed. Its throughput
// is the most a PBFT cluster could reach on this machine with this
// transport and these signatures; PBFT's distance from it is what
// agreement, persistence and execution cost.
const ProtocolFloor = "floor"

// ErrConfig marks an invalid configuration.
var ErrConfig = errors.New("invalid benchmark configuration")

func (c Config) validate() error {
	if c.Peer != "" {
		if err := c.validatePeer(); err != nil {
			return err
		}
		return c.validateLoad()
	}
	switch {
	case c.Protocol != "pbft" && c.Protocol != "raft" && c.Protocol != ProtocolFloor:
		return fmt.Errorf("%w: protocol %q: want pbft, raft or %s", ErrConfig, c.Protocol, ProtocolFloor)
	case c.Protocol != "raft" && c.Replicas < 4:
		return fmt.Errorf("%w: %s needs at least 4 replicas (n = 3f+1), got %d", ErrConfig, c.Protocol, c.Replicas)
	case c.App != AppKV && c.App != AppLedger:
		return fmt.Errorf("%w: app %q: want %s or %s", ErrConfig, c.App, AppKV, AppLedger)
	case c.App == AppLedger && c.Protocol == ProtocolFloor:
		return fmt.Errorf("%w: the %s executes nothing: --app %s needs pbft or raft", ErrConfig, ProtocolFloor, AppLedger)
	case c.App == AppLedger && c.Scenario != ScenarioNone && c.Scenario != ScenarioCrashBackup && c.Scenario != ScenarioCrashLeader:
		return fmt.Errorf("%w: --app %s runs the scenarios %s, %s and %s (its setup would spend scenario %q's fault)", ErrConfig, AppLedger, ScenarioNone, ScenarioCrashBackup, ScenarioCrashLeader, c.Scenario)
	case c.Protocol == ProtocolFloor && c.Scenario != ScenarioNone:
		return fmt.Errorf("%w: the %s has no faults to survive: scenario %q needs pbft or raft", ErrConfig, ProtocolFloor, c.Scenario)
	case c.Protocol == "raft" && c.Replicas < 3:
		return fmt.Errorf("%w: raft needs at least 3 replicas (n = 2f+1) to tolerate a crash, got %d", ErrConfig, c.Replicas)
	case !slices.Contains(Scenarios, c.Scenario):
		return fmt.Errorf("%w: scenario %q: want one of %v", ErrConfig, c.Scenario, Scenarios)
	case c.Scenario == ScenarioByzantine && c.Protocol != "pbft":
		return fmt.Errorf("%w: the byzantine scenario needs --protocol pbft: Raft tolerates crash faults only", ErrConfig)
	case isAttack(c.Scenario) && c.Protocol != "pbft" && c.Protocol != "raft":
		return fmt.Errorf("%w: attack scenario %q needs pbft or raft", ErrConfig, c.Scenario)
	case c.Protocol == "raft" && slices.Contains(AttackScenarios, c.Scenario) && !slices.Contains(AttackKinds, c.Scenario):
		return fmt.Errorf("%w: scenario %q attacks from a replica: it needs --protocol pbft (Raft's replicas are trusted)", ErrConfig, c.Scenario)
	case c.AttackRate < 0:
		return fmt.Errorf("%w: negative attack rate %v", ErrConfig, c.AttackRate)
	case !slices.Contains(byzantine.Strategies, c.ByzantineStrategy):
		return fmt.Errorf("%w: byzantine strategy %q: want one of %v", ErrConfig, c.ByzantineStrategy, byzantine.Strategies)
	case c.AskReceipts && (c.Protocol != "pbft" || c.NoReceipts || c.App != AppKV):
		return fmt.Errorf("%w: --receipts needs --protocol pbft with receipts on and --app %s", ErrConfig, AppKV)
	}
	return c.validateLoad()
}

// validateLoad checks the workload's fields, which pbftnode and the peers
// share.
func (c Config) validateLoad() error {
	switch {
	case c.Clients < 1 || c.Window < 1 || c.Window > 64:
		return fmt.Errorf("%w: need at least 1 client and a window in [1, 64], got %d clients, window %d", ErrConfig, c.Clients, c.Window)
	case c.Rate < 0:
		return fmt.Errorf("%w: negative rate %v", ErrConfig, c.Rate)
	case c.GetRatio < 0 || c.GetRatio > 1:
		return fmt.Errorf("%w: get ratio %v outside [0, 1]", ErrConfig, c.GetRatio)
	case !slices.Contains(PayloadSizes, c.Payload):
		return fmt.Errorf("%w: payload %d bytes: want one of %v", ErrConfig, c.Payload, PayloadSizes)
	case c.Keys < 1:
		return fmt.Errorf("%w: key space of %d keys", ErrConfig, c.Keys)
	case c.Duration <= 0:
		return fmt.Errorf("%w: duration %v must be positive", ErrConfig, c.Duration)
	}
	return nil
}

// DefaultConnections is how many connections the logical clients share
// by default (Config.Connections): the reference etcd measurement of
// issue 21 drove its closed-loop workers over 4 gRPC connections, and
// every system here gets the same.
const DefaultConnections = 4

// maxClientWindow is the replicas' bound on one client's outstanding
// requests: a pbftnode connection carries at most that many.
const maxClientWindow = 64

// connections is Config.Connections resolved (see its doc); Clients and
// Window must be set.
func (c Config) connections() int {
	n := c.Connections
	if n <= 0 {
		n = DefaultConnections
	}
	if c.App == AppLedger || isAttack(c.Scenario) || c.Scenario == ScenarioByzantine {
		n = c.Clients
	}
	if c.Peer == "" {
		n = max(n, (c.Clients*c.Window+maxClientWindow-1)/maxClientWindow)
	}
	return max(1, min(n, c.Clients))
}

// faultTolerance is f for the configuration: (n-1)/3 for PBFT and
// CometBFT, (n-1)/2 for Raft and etcd.
func (c Config) faultTolerance() int {
	if c.Protocol == "raft" || c.Protocol == PeerEtcd {
		return (c.Replicas - 1) / 2
	}
	return (c.Replicas - 1) / 3
}

// defaultLabel names the configuration, e.g. "pbft n=4 crash-leader".
func (c Config) defaultLabel() string {
	s := fmt.Sprintf("%s n=%d", c.Protocol, c.Replicas)
	if c.App == AppLedger {
		s += " ledger"
	}
	if c.NoFsync {
		s += " nofsync"
	}
	if c.NoReceipts {
		s += " noreceipts"
	}
	if c.ReceiptsCachedOnly {
		s += " receipts-cached"
	}
	if c.AskReceipts {
		s += " receipts"
	}
	if c.CommittedRepliesOnly {
		s += " committed-replies"
	}
	if c.CheckDirectCommits {
		s += " signed-commits"
	}
	if c.Scenario != ScenarioNone && c.Scenario != "" {
		s += " " + c.Scenario
	}
	if c.Protocol == PeerCometBFT {
		s += " commit=" + c.CometBFTTimeoutCommit.String()
	}
	if c.Rate > 0 {
		s += fmt.Sprintf(" rate=%.0f", c.Rate)
	} else {
		s += fmt.Sprintf(" c=%dx%d", c.Clients, c.Window)
	}
	if c.Payload != 16 && c.Payload != 0 && c.App != AppLedger {
		s += fmt.Sprintf(" %dB", c.Payload)
	}
	if c.GetRatio > 0 {
		s += fmt.Sprintf(" get=%.0f%%", 100*c.GetRatio)
	}
	return s
}
