package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/keyfile"
)

// DefaultBasePort is where testnet replicas listen: replica i on P+i,
// its metrics on P+100+i.
const DefaultBasePort = 26600

// Testnet describes a local test cluster for WriteTestnet.
type Testnet struct {
	// Dir receives DIR/nodeI (a replica home each), DIR/client.json,
	// DIR/client.key and DIR/cluster.json (the cluster file: its id and
	// the replicas' public keys, for pbftnode verify-receipt).
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
	// NoReceipts writes configurations with receipts off (benchmarks).
	NoReceipts bool
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
}

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
	switch {
	case t.Replicas > 100:
		return ClusterFile{}, errors.New("testnet: at most 100 replicas (replica ports P..P+99, metrics ports P+100..)")
	case t.BasePort < 0 || t.BasePort+100+t.Replicas > 65535:
		return ClusterFile{}, fmt.Errorf("testnet: base port %d leaves no room for %d replicas and their metrics ports", t.BasePort, t.Replicas)
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
	keys := make([]ed25519.PrivateKey, t.Replicas)
	for i := range keys {
		key, err := crypto.GenerateKey(nil)
		if err != nil {
			return ClusterFile{}, fmt.Errorf("testnet: %w", err)
		}
		keys[i] = key
		cluster.Replicas = append(cluster.Replicas, ReplicaRecord{
			Index:     uint32(i),
			PublicKey: keyfile.EncodePublicKey(key.Public().(ed25519.PublicKey)),
			Address:   fmt.Sprintf("/ip4/%s/tcp/%d", t.Host, t.BasePort+i),
		})
	}
	for i, key := range keys {
		if err := writeTestnetHome(t, cluster, i, key); err != nil {
			return ClusterFile{}, err
		}
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

// writeTestnetHome writes replica i's home, DIR/nodeI.
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
