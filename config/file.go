package config

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pbftnode/pbftnode/keyfile"
)

// FileName is the replica configuration file inside its home directory.
const FileName = "config.json"

// PassphraseEnv is the environment variable holding the passphrase of an
// encrypted key file.
const PassphraseEnv = "PBFTNODE_PASSPHRASE"

// The consensus protocols a cluster can run (ClusterFile.Consensus).
const (
	// ConsensusPBFT is PBFT: n = 3f+1 replicas tolerate f Byzantine faults.
	ConsensusPBFT = "pbft"
	// ConsensusRaft is the Raft mode: n = 2f+1 replicas tolerate f crash
	// faults.
	ConsensusRaft = "raft"
)

// Defaults for the empty file settings, relative to the home directory.
const (
	DefaultKeyFile       = "key"
	DefaultDataDir       = "data"
	DefaultClientKeyFile = "client.key"
)

// ClusterFile lists the replicas of a cluster: what every replica and
// client must agree on.
type ClusterFile struct {
	// ClusterID is mixed into every signature, so nothing signed for one
	// cluster is valid in another.
	ClusterID string `json:"cluster_id"`
	// Consensus is ConsensusPBFT (or "", the default) or ConsensusRaft.
	// Its JSON key is "protocol", as existing files spell it.
	Consensus string          `json:"protocol,omitempty"`
	Replicas  []ReplicaRecord `json:"replicas"`
	// LedgerIssuers lists the hex Ed25519 public keys allowed to mint in
	// the ledger application (application "ledger"); every replica must
	// list the same keys.
	LedgerIssuers []string `json:"ledger_issuers,omitempty"`
	// Admins lists the hex Ed25519 public keys of the administrators who
	// may change the membership at run time (docs/reconfiguration.md);
	// AdminThreshold of them must sign each change (0 with admins listed:
	// all of them). No admins: the membership cannot change.
	Admins         []string `json:"admins,omitempty"`
	AdminThreshold int      `json:"admin_threshold,omitempty"`
}

// ReplicaRecord is one replica in a ClusterFile.
type ReplicaRecord struct {
	Index uint32 `json:"index"`
	// PublicKey is the replica's Ed25519 public key in hex; its libp2p
	// peer ID derives from it.
	PublicKey string `json:"public_key"`
	// Address is the replica's libp2p multiaddr, e.g. /ip4/10.0.0.1/tcp/26600.
	Address string `json:"address"`
}

// FileConfig is a replica's configuration file (home/config.json).
// Relative paths are relative to the home directory.
type FileConfig struct {
	ClusterFile
	// Index is this replica's index: its position in Replicas, or, for a
	// spare (a replica that is not yet a member and joins when an
	// administrator adds it), an index not among them.
	Index uint32 `json:"index"`
	// Address is this replica's own libp2p multiaddr when it is a spare
	// (required then, since Replicas does not list it; an add-replica
	// change registers it). Unused, and must be empty or equal to its
	// record's, for a replica listed in Replicas.
	Address string `json:"address,omitempty"`
	// KeyFile holds this replica's private key (default "key").
	KeyFile string `json:"key_file,omitempty"`
	// KeyPassphraseFile holds the passphrase of an encrypted key file (a
	// file of mode 0600 or stricter); the environment variable
	// PBFTNODE_PASSPHRASE takes precedence over it. Unused for a plain key.
	KeyPassphraseFile string `json:"key_passphrase_file,omitempty"`
	// DataDir holds the database (default "data").
	DataDir string `json:"data_dir,omitempty"`
	// Listen overrides the listen multiaddr (default: this replica's
	// Address, e.g. to listen on 0.0.0.0 behind NAT).
	Listen string `json:"listen,omitempty"`
	// MetricsListen is host:port for /metrics ("" disables it).
	MetricsListen string `json:"metrics_listen,omitempty"`
	// ClientAllowlist, when not empty, lists the hex Ed25519 public keys
	// of the only clients allowed to connect; empty lets any client in.
	ClientAllowlist []string `json:"client_allowlist,omitempty"`
	// ClientRateLimit bounds each client's requests per second (0: no
	// limit); ClientRateBurst is the burst allowed above it.
	ClientRateLimit float64 `json:"client_rate_limit,omitempty"`
	ClientRateBurst int     `json:"client_rate_burst,omitempty"`
	// Application is the replicated application: "kv" (or "", the
	// built-in key-value store), "ledger" (the built-in ledger), or
	// grpc://HOST:PORT or unix:///PATH (an application in another
	// process, serving the gRPC protocol of package appgrpc).
	Application string `json:"application,omitempty"`
	// UnsafeNoFsync turns fsync off: for benchmarks only.
	UnsafeNoFsync bool `json:"unsafe_no_fsync,omitempty"`
	// Receipts (PBFT): sign a receipt per executed batch and attach it to
	// the replies (docs/receipts.md). Absent or true: on; false: off.
	Receipts *bool `json:"receipts,omitempty"`
	// ReceiptsCachedOnly attaches receipts only to replies to a
	// retransmitted request (from the reply cache), keeping other
	// replies small; clients asking for a receipt retransmit once.
	ReceiptsCachedOnly bool `json:"receipts_cached_only,omitempty"`
	// CheckDirectCommits checks the signature of every COMMIT, even one
	// its author's own authenticated session delivered (by default such
	// a COMMIT counts on the session's word).
	CheckDirectCommits bool `json:"check_direct_commits,omitempty"`
	// CommittedRepliesOnly (PBFT) turns tentative replies off: the
	// replica answers every request only once its batch committed, even
	// one that accepts a tentative reply (docs/architecture.md,
	// "Tentative replies").
	CommittedRepliesOnly bool `json:"committed_replies_only,omitempty"`
	// PBFT tuning; zero values take the defaults.
	CheckpointInterval  uint64 `json:"checkpoint_interval,omitempty"`
	WindowSize          uint64 `json:"window_size,omitempty"`
	MaxBatchSize        int    `json:"max_batch_size,omitempty"`
	MaxInFlight         int    `json:"max_in_flight,omitempty"`
	MaxPartialInFlight  int    `json:"max_partial_in_flight,omitempty"`
	PipelinedBatchBelow int    `json:"pipelined_batch_below,omitempty"`
	BatchDelayTicks     int    `json:"batch_delay_ticks,omitempty"`
	// TickInterval is a Go duration, e.g. "10ms".
	TickInterval string `json:"tick_interval,omitempty"`
	// The Go runtime of a `pbftnode run` process (a program that embeds
	// a replica keeps its own settings). GCPercent is the garbage
	// collector's target, as Go's GOGC (0: the runtime's, Go's 100 unless
	// GOGC is set; -1: collect only at the memory limit, which then must
	// be set). MemoryLimitMiB is a soft limit on the process's Go memory,
	// as Go's GOMEMLIMIT (0: none unless GOMEMLIMIT is set): the collector
	// works harder as the heap nears it.
	GCPercent      int `json:"gc_percent,omitempty"`
	MemoryLimitMiB int `json:"memory_limit_mib,omitempty"`
	// GOMAXPROCS bounds the OS threads running Go code at once, as Go's
	// GOMAXPROCS (0: the runtime's, the machine's or the container's CPUs
	// unless GOMAXPROCS is set). testnet sets it to each replica's share
	// of the machine's cores when they all run on one machine.
	GOMAXPROCS int `json:"gomaxprocs,omitempty"`
	// Raft mode tuning (zero: the raftmode defaults). The snapshot
	// interval is in log entries; election and heartbeat are in ticks.
	RaftSnapshotInterval uint64 `json:"raft_snapshot_interval,omitempty"`
	RaftElectionTicks    int    `json:"raft_election_ticks,omitempty"`
	RaftHeartbeatTicks   int    `json:"raft_heartbeat_ticks,omitempty"`
}

// ClientFile is what `pbftnode client --dir DIR` reads (DIR/client.json).
type ClientFile struct {
	ClusterFile
	// KeyFile holds the client's private key (default "client.key").
	KeyFile string `json:"key_file,omitempty"`
	// Application, when set, is the application the cluster replicates
	// (an application setting, e.g. "kv" or "ledger"), so that a client
	// can refuse to send an operation of another application, which the
	// cluster's would misread; empty: not said.
	Application string `json:"application,omitempty"`
}

// KeyPath is the client's key file for a client.json in dir: KeyFile,
// relative to dir unless absolute, or dir/client.key.
func (c ClientFile) KeyPath(dir string) string { return resolve(dir, c.KeyFile, DefaultClientKeyFile) }

// KeyPath returns the path of the replica's key file.
func (fc FileConfig) KeyPath(home string) string { return resolve(home, fc.KeyFile, DefaultKeyFile) }

// DataPath returns the path of the replica's database directory.
func (fc FileConfig) DataPath(home string) string { return resolve(home, fc.DataDir, DefaultDataDir) }

// ReadKey reads the replica's key file. An encrypted key's passphrase comes
// from PBFTNODE_PASSPHRASE if it is set, else from key_passphrase_file.
func (fc FileConfig) ReadKey(home string) (ed25519.PrivateKey, error) {
	key, err := keyfile.ReadWithPassphrase(fc.KeyPath(home), func() ([]byte, error) {
		if p := os.Getenv(PassphraseEnv); p != "" {
			return []byte(p), nil
		}
		if fc.KeyPassphraseFile != "" {
			return keyfile.ReadPassphraseFile(resolve(home, fc.KeyPassphraseFile, ""))
		}
		return nil, fmt.Errorf("%w: set %s or key_passphrase_file in %s", keyfile.ErrPassphraseRequired, PassphraseEnv, FileName)
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return key, nil
}

// WriteJSON writes v as indented JSON to path with the given mode.
func WriteJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), mode); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// ReadJSON reads path into v, refusing unknown fields.
func ReadJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// resolve returns path (or def when path is empty) relative to home
// unless it is absolute.
func resolve(home, path, def string) string {
	if path == "" {
		path = def
	}
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(home, path)
}
