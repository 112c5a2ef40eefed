package config

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/membership"
)

// DefaultBasePort is where testnet replicas listen: replica i on P+i,
// its metrics on P+100+i.
const DefaultBasePort = 26600

// Testnet describes a local test cluster for WriteTestnet.
type Testnet struct {
	// Dir receives DIR/nodeI (a replica home each, then the spares'),
	// DIR/client.json, DIR/client.key, DIR/admin0.pem ... (the
	// administrators' keys) and DIR/cluster.json (the cluster file: its
	// id, the replicas' and administrators' public keys, for pbftnode
	// verify-receipt).
	Dir string
	// Replicas is the number of replicas (0: 4 for PBFT, 3 for Raft).
	Replicas int
	// Consensus is ConsensusPBFT ("" too) or ConsensusRaft.
	Consensus string
	// Host is the address replicas listen on and are reached at
	// (default 127.0.0.1); replica i listens on BasePort+i (default
	// DefaultBasePort) and serves metrics on BasePort+100+i.
	Host     string
	BasePort int
	// UnsafeNoFsync writes configurations with fsync off (benchmarks).
	UnsafeNoFsync bool
	// NoReceipts writes configurations with receipts off (benchmarks);
	// ReceiptsCachedOnly with receipts_cached_only.
	NoReceipts         bool
	ReceiptsCachedOnly bool
	// CheckDirectCommits writes check_direct_commits (benchmarks).
	CheckDirectCommits bool
	// GOMAXPROCS is every home's gomaxprocs: 0 writes each replica's
	// share of this machine's CPUs (CPUShare), since a testnet's
	// replicas run on one machine; negative writes none (Go's default,
	// every CPU for each).
	GOMAXPROCS int
	// RaftSnapshotInterval sets the Raft mode's snapshot interval (0:
	// the default).
	RaftSnapshotInterval uint64
	// Application is every replica's application (FileConfig.Application;
	// "": the key-value store).
	Application string
	// LedgerIssuers are the hex Ed25519 public keys that may mint in the
	// ledger application (ClusterFile.LedgerIssuers).
	LedgerIssuers []string
	// ClientIsIssuer adds the testnet's own client key (DIR/client.key)
	// to LedgerIssuers, so `pbftnode client --dir DIR` can mint.
	ClientIsIssuer bool
	// Spares is how many spare homes to write after the replicas'
	// (DIR/nodeN .. DIR/nodeN+Spares-1 for N replicas): replicas that are
	// not members of the cluster file's configuration, each with its own
	// key, index N+i, address (BasePort+N+i) and metrics port, that join
	// once an administrator adds them (pbftnode admin add-replica).
	Spares int
	// Admins is how many administrator keys to write (DIR/admin0.pem
	// ...; 0: 1) and list in every cluster file; AdminThreshold of them
	// must sign a membership change (0: 1).
	Admins         int
	AdminThreshold int
	// PreloadKeys, when positive, gives every replica (not the spares)
	// the same key-value state of that many entries, k0000000 ...,
	// of PreloadValueBytes each (0: execution.DefaultPreloadValueBytes),
	// as if executed before sequence 1 (execution.Preload): written once
	// into node0's database and copied to the others. Key-value
	// application only.
	PreloadKeys       int
	PreloadValueBytes int
}

// AdminKeyFile is the name of administrator i's key file in a testnet
// directory.
func AdminKeyFile(i int) string { return fmt.Sprintf("admin%d.pem", i) }

// WriteTestnet writes a testnet: fresh keys for every replica and for a
// client, the replicas' homes and the client's configuration. It returns
// the cluster file it wrote.
func WriteTestnet(t Testnet) (ClusterFile, error) {
	if t.Dir == "" {
		return ClusterFile{}, errors.New("testnet: no directory")
	}
	if t.Consensus == "" {
		t.Consensus = ConsensusPBFT
	}
	if t.Replicas == 0 {
		t.Replicas = 4
		if t.Consensus == ConsensusRaft {
			t.Replicas = 3
		}
	}
	if t.Host == "" {
		t.Host = "127.0.0.1"
	}
	if t.BasePort == 0 {
		t.BasePort = DefaultBasePort
	}
	if err := CheckClusterSize(t.Consensus, t.Replicas); err != nil {
		return ClusterFile{}, fmt.Errorf("testnet: %w", err)
	}
	if err := CheckApplication(t.Application, t.LedgerIssuers); err != nil {
		return ClusterFile{}, fmt.Errorf("testnet: %w", err)
	}
	t.Admins, t.AdminThreshold = cmp.Or(t.Admins, 1), cmp.Or(t.AdminThreshold, 1)
	switch {
	case t.Spares < 0:
		return ClusterFile{}, fmt.Errorf("testnet: %d spares", t.Spares)
	case t.Replicas+t.Spares > 100:
		return ClusterFile{}, errors.New("testnet: at most 100 replicas and spares (replica ports P..P+99, metrics ports P+100..)")
	case t.BasePort < 0 || t.BasePort+100+t.Replicas+t.Spares > 65535:
		return ClusterFile{}, fmt.Errorf("testnet: base port %d leaves no room for %d replicas and their metrics ports", t.BasePort, t.Replicas+t.Spares)
	case t.Admins < 0 || t.Admins > membership.MaxAdmins:
		return ClusterFile{}, fmt.Errorf("testnet: %d admins (1 to %d)", t.Admins, membership.MaxAdmins)
	case t.AdminThreshold < 1 || t.AdminThreshold > t.Admins:
		return ClusterFile{}, fmt.Errorf("testnet: admin threshold %d of %d admins (want 1 to %d)", t.AdminThreshold, t.Admins, t.Admins)
	case t.PreloadKeys < 0 || t.PreloadValueBytes < 0:
		return ClusterFile{}, fmt.Errorf("testnet: preload of %d keys of %d bytes", t.PreloadKeys, t.PreloadValueBytes)
	case t.PreloadKeys > 0 && t.Application != "" && t.Application != ApplicationKV:
		return ClusterFile{}, fmt.Errorf("testnet: a preload needs the %s application, not %q", ApplicationKV, t.Application)
	}
	if err := os.MkdirAll(t.Dir, 0o755); err != nil {
		return ClusterFile{}, fmt.Errorf("testnet: %w", err)
	}
	var idBytes [6]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return ClusterFile{}, fmt.Errorf("testnet: cluster id: %w", err)
	}
	clientKey, err := crypto.GenerateKey(nil)
	if err != nil {
		return ClusterFile{}, fmt.Errorf("testnet: %w", err)
	}
	issuers := slices.Clone(t.LedgerIssuers)
	if t.ClientIsIssuer {
		issuers = append(issuers, keyfile.EncodePublicKey(clientKey.Public().(ed25519.PublicKey)))
	}
	cluster := ClusterFile{ClusterID: "testnet-" + hex.EncodeToString(idBytes[:]), Consensus: t.Consensus, LedgerIssuers: issuers}
	if cluster.Admins, err = writeAdminKeys(t.Dir, t.Admins); err != nil {
		return ClusterFile{}, err
	}
	cluster.AdminThreshold = t.AdminThreshold
	keys := make([]ed25519.PrivateKey, t.Replicas+t.Spares)
	for i := range keys {
		key, err := crypto.GenerateKey(nil)
		if err != nil {
			return ClusterFile{}, fmt.Errorf("testnet: %w", err)
		}
		keys[i] = key
		if i < t.Replicas {
			cluster.Replicas = append(cluster.Replicas, ReplicaRecord{
				Index:     uint32(i),
				PublicKey: keyfile.EncodePublicKey(key.Public().(ed25519.PublicKey)),
				Address:   testnetAddress(t, i),
			})
		}
	}
	for i, key := range keys {
		if err := writeTestnetHome(t, cluster, i, key); err != nil {
			return ClusterFile{}, err
		}
	}
	if err := preloadTestnet(t); err != nil {
		return ClusterFile{}, err
	}
	if err := replaceKey(filepath.Join(t.Dir, DefaultClientKeyFile), clientKey); err != nil {
		return ClusterFile{}, err
	}
	if err := WriteJSON(filepath.Join(t.Dir, "cluster.json"), cluster, 0o644); err != nil {
		return ClusterFile{}, fmt.Errorf("testnet: %w", err)
	}
	if err := WriteJSON(filepath.Join(t.Dir, "client.json"), ClientFile{ClusterFile: cluster, KeyFile: DefaultClientKeyFile, Application: t.Application}, 0o644); err != nil {
		return ClusterFile{}, fmt.Errorf("testnet: %w", err)
	}
	return cluster, nil
}

// testnetAddress is where replica (or spare) i of a testnet listens.
func testnetAddress(t Testnet, i int) string {
	return fmt.Sprintf("/ip4/%s/tcp/%d", t.Host, t.BasePort+i)
}

// writeAdminKeys writes n fresh administrator keys, DIR/admin0.pem ...,
// and returns their public keys in hex.
func writeAdminKeys(dir string, n int) ([]string, error) {
	var pubs []string
	for i := range n {
		key, err := crypto.GenerateKey(nil)
		if err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		if err := replaceKey(filepath.Join(dir, AdminKeyFile(i)), key); err != nil {
			return nil, err
		}
		pubs = append(pubs, keyfile.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	}
	return pubs, nil
}

// CPUShare is each one's share of this machine's CPUs when processes
// processes run on it together: at least 1. Each replica of a testnet
// gets it as its gomaxprocs (Testnet.GOMAXPROCS): with Go's default
// every replica would run as many threads as the machine has CPUs, and
// on two CPUs shared by four replicas their goroutines' hand-offs then
// cross threads (futex wake-ups, spinning threads) instead of staying on
// one (docs/profile.md, "Stop 33").
func CPUShare(processes int) int {
	return max(1, runtime.NumCPU()/max(1, processes))
}

// writeTestnetHome writes replica i's home, DIR/nodeI: a spare's when i is
// not among the cluster's replicas (then config.json gives its address).
func writeTestnetHome(t Testnet, cluster ClusterFile, i int, key ed25519.PrivateKey) error {
	home := filepath.Join(t.Dir, fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	if err := replaceKey(filepath.Join(home, DefaultKeyFile), key); err != nil {
		return err
	}
	fc := FileConfig{
		ClusterFile:   cluster,
		Index:         uint32(i),
		KeyFile:       DefaultKeyFile,
		DataDir:       DefaultDataDir,
		MetricsListen: fmt.Sprintf("%s:%d", t.Host, t.BasePort+100+i),
		UnsafeNoFsync: t.UnsafeNoFsync,
		Application:   t.Application,
	}
	if i >= len(cluster.Replicas) {
		fc.Address = testnetAddress(t, i)
	}
	fc.ReceiptsCachedOnly = t.ReceiptsCachedOnly
	fc.CheckDirectCommits = t.CheckDirectCommits
	switch {
	case t.GOMAXPROCS == 0:
		fc.GOMAXPROCS = CPUShare(len(cluster.Replicas) + t.Spares)
	case t.GOMAXPROCS > 0:
		fc.GOMAXPROCS = t.GOMAXPROCS
	}
	if t.NoReceipts {
		off := false
		fc.Receipts = &off
	}
	if t.Consensus == ConsensusRaft {
		fc.RaftSnapshotInterval = t.RaftSnapshotInterval
	}
	if err := WriteJSON(filepath.Join(home, FileName), fc, 0o644); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return nil
}

// replaceKey writes a key file, replacing an older one (a testnet may be
// written over an older one).
func replaceKey(path string, key ed25519.PrivateKey) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("testnet: %w", err)
	}
	if err := keyfile.Write(path, key); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return nil
}

// preloadTestnet writes t's preload (if any) into replica 0's database
// and copies it to the other replicas' (see Testnet.PreloadKeys).
func preloadTestnet(t Testnet) error {
	if t.PreloadKeys == 0 {
		return nil
	}
	dataDir := func(i int) string { return filepath.Join(t.Dir, fmt.Sprintf("node%d", i), DefaultDataDir) }
	if _, err := execution.PreloadDataDir(dataDir(0), t.PreloadKeys, cmp.Or(t.PreloadValueBytes, execution.DefaultPreloadValueBytes)); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	for i := 1; i < t.Replicas; i++ {
		if err := execution.CopyDatabase(dataDir(0), dataDir(i)); err != nil {
			return fmt.Errorf("testnet: replica %d: %w", i, err)
		}
	}
	return nil
}
