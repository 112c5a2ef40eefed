package config

import (
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/raftmode"
)

// Replica is one member of the cluster, decoded from a ReplicaRecord.
type Replica struct {
	Index     uint32
	PublicKey ed25519.PublicKey
	// Addr is the replica's libp2p listen multiaddr, e.g.
	// /ip4/127.0.0.1/tcp/26600.
	Addr string
}

// Home is a replica's home directory whose configuration passed Check:
// the file's settings decoded into what a runtime needs. Settings left
// zero take the runtime's and the core's defaults.
type Home struct {
	// Dir is the home directory; File its configuration after the
	// command-line overrides.
	Dir  string
	File FileConfig
	// Consensus is ConsensusPBFT or ConsensusRaft ("" in the file reads as
	// ConsensusPBFT).
	Consensus string
	Replicas  []Replica
	// Self is this replica's own record (index, public key, address):
	// its entry in Replicas, or for a spare its index, its key's public
	// key and address. Spare says the home is a spare's: Self is not
	// among the replicas of the cluster file.
	Self  membership.Member
	Spare bool
	// Genesis is the cluster file's configuration as membership epoch 0
	// (ClusterFile.Genesis).
	Genesis membership.Config
	Key     ed25519.PrivateKey
	// KeyEncrypted says whether the key file is passphrase-encrypted.
	KeyEncrypted    bool
	ClientAllowlist []ed25519.PublicKey
	// DataDir is the database directory, resolved against Dir.
	DataDir string
	// ListenAddr is the libp2p listen multiaddr: listen, or this replica's
	// own address.
	ListenAddr string
	// Application is the application setting, parsed; LedgerIssuers are
	// ledger_issuers, decoded (used by the ledger only).
	Application   ApplicationSpec
	LedgerIssuers []ed25519.PublicKey
	// TickInterval is tick_interval (0: the runtime's default).
	TickInterval time.Duration
	// PBFT and Raft are the two cores' tuning from the file; the runtime
	// fills in the rest.
	PBFT protocol.Config
	Raft raftmode.Config
	// Warnings are what Check warned about.
	Warnings []string
}

// InvalidError is a configuration with problems: every problem Check
// found.
type InvalidError struct {
	Path     string
	Problems []error
}

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return fmt.Sprintf("config: %s: %d problem(s): %s", e.Path, len(e.Problems), strings.Join(msgs, "; "))
}

// Unwrap returns the problems, so errors.Is sees their causes.
func (e *InvalidError) Unwrap() []error { return e.Problems }

// Load reads home/config.json, applies overrides (the command-line flags;
// nil for none) and checks the result with Check. It returns the checked
// home, or an error: the file could not be read or parsed, an override is
// malformed, or Check found problems (an *InvalidError listing them all;
// the Home returned with it still carries Dir, File and Warnings).
// `pbftnode run` and `pbftnode config validate` both load through here,
// so one refuses exactly what the other does.
func Load(home string, overrides *Flags) (Home, error) {
	path := filepath.Join(home, FileName)
	var fc FileConfig
	if err := ReadJSON(path, &fc); err != nil {
		return Home{}, err
	}
	if overrides != nil {
		if err := overrides.Apply(&fc); err != nil {
			return Home{}, err
		}
	}
	var f findings
	c := check(home, fc, &f)
	if len(f.problems) > 0 {
		return Home{Dir: home, File: fc, Warnings: f.warnings}, &InvalidError{Path: path, Problems: f.problems}
	}
	genesis, err := fc.ClusterFile.Genesis()
	if err != nil {
		return Home{Dir: home, File: fc, Warnings: f.warnings}, &InvalidError{Path: path, Problems: []error{err}}
	}
	self := membership.Member{Index: fc.Index, PublicKey: c.key.Public().(ed25519.PublicKey), Address: fc.Address}
	if !c.spare {
		self.Address = c.replicas[fc.Index].Addr
	}
	h := Home{
		Dir:             home,
		File:            fc,
		Consensus:       cmp.Or(fc.Consensus, ConsensusPBFT),
		Replicas:        c.replicas,
		Self:            self,
		Spare:           c.spare,
		Genesis:         genesis,
		Key:             c.key,
		KeyEncrypted:    c.keyEncrypted,
		ClientAllowlist: c.allowlist,
		DataDir:         fc.DataPath(home),
		ListenAddr:      cmp.Or(fc.Listen, self.Address),
		TickInterval:    c.tick,
		Application:     c.application,
		LedgerIssuers:   c.issuers,
		PBFT: protocol.Config{
			CheckpointInterval:  fc.CheckpointInterval,
			WindowSize:          fc.WindowSize,
			MaxBatchSize:        fc.MaxBatchSize,
			MaxInFlight:         fc.MaxInFlight,
			MaxPartialInFlight:  fc.MaxPartialInFlight,
			PipelinedBatchBelow: fc.PipelinedBatchBelow,
			BatchDelayTicks:     fc.BatchDelayTicks,
		},
		Raft: raftmode.Config{
			MaxBatchSize:     fc.MaxBatchSize,
			SnapshotInterval: fc.RaftSnapshotInterval,
			ElectionTicks:    fc.RaftElectionTicks,
			HeartbeatTicks:   fc.RaftHeartbeatTicks,
		},
		Warnings: f.warnings,
	}
	return h, nil
}

// Summary is what `pbftnode config validate` prints about a valid home:
// one line each for the cluster, this replica, its addresses, its clients,
// its key, its data and its application.
func (h Home) Summary() []string {
	n := len(h.Replicas)
	peerID := ""
	if id, err := identity.PeerIDFromPublicKey(h.Key.Public().(ed25519.PublicKey)); err == nil {
		peerID = id.String()
	}
	metrics := cmp.Or(h.File.MetricsListen, "(disabled)")
	clients := "any (no client_allowlist)"
	if len(h.ClientAllowlist) > 0 {
		clients = fmt.Sprintf("%d allowlisted", len(h.ClientAllowlist))
	}
	keyKind := "plain"
	if h.KeyEncrypted {
		keyKind = "encrypted"
	}
	fsync := "on"
	if h.File.UnsafeNoFsync {
		fsync = "OFF"
	}
	app := h.Application.String()
	if h.Application.Kind == ApplicationLedger {
		app += fmt.Sprintf(" (%d issuer(s) may mint)", len(h.LedgerIssuers))
	}
	return []string{
		fmt.Sprintf("cluster:  %s (%s, %d replicas, tolerates f=%d)", h.File.ClusterID, h.Consensus, n, FaultTolerance(h.Consensus, n)),
		fmt.Sprintf("replica:  %d%s, peer ID %s", h.File.Index, spareNote(h.Spare), peerID),
		fmt.Sprintf("listen:   %s", h.ListenAddr),
		fmt.Sprintf("metrics:  %s", metrics),
		fmt.Sprintf("clients:  %s", clients),
		fmt.Sprintf("key:      %s (%s)", h.File.KeyPath(h.Dir), keyKind),
		fmt.Sprintf("data:     %s (fsync %s)", h.DataDir, fsync),
		fmt.Sprintf("app:      %s", app),
	}
}

// spareNote is what Summary adds after a spare's index.
func spareNote(spare bool) string {
	if spare {
		return " (a spare: not yet a member; it joins once an administrator adds it)"
	}
	return ""
}

// Decode checks the cluster's settings (cluster_id, the number of replicas
// for its consensus protocol, the replica list: the cluster rules of
// Check) and returns its replicas; the error names every problem.
func (c ClusterFile) Decode() ([]Replica, error) {
	var f findings
	if c.ClusterID == "" {
		f.problem("cluster_id is empty")
	}
	checkClusterSize(c.Consensus, len(c.Replicas), &f)
	replicas := checkReplicas(c.Replicas, &f)
	if len(f.problems) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(f.problems...))
	}
	return replicas, nil
}
