package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/keyfile"
)

// DefaultBasePort is where testnet replicas listen: replica i on P+i,
// its metrics on P+100+i.
const DefaultBasePort = 26600

func runTestnet(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testnet", flag.ContinueOnError)
	replicas := fs.Int("replicas", 0, "number of replicas (default 4 for PBFT, n = 3f+1; 3 for Raft, n = 2f+1)")
	dir := fs.String("dir", "", "directory to write the testnet into (required)")
	basePort := fs.Int("base-port", DefaultBasePort, "replica i listens on 127.0.0.1:P+i and serves metrics on P+100+i")
	proto := fs.String("protocol", "pbft", "consensus protocol: pbft (n = 3f+1, Byzantine faults) or raft (n = 2f+1, crash faults)")
	host := fs.String("host", "127.0.0.1", "address the replicas listen on and are reached at")
	noFsync := fs.Bool("unsafe-no-fsync", false, "write configurations with fsync off (benchmarks only)")
	snapshotInterval := fs.Uint64("raft-snapshot-interval", 0, "Raft mode: snapshot the application every N log entries (0: the default, 8192)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	switch {
	case *dir == "":
		return fmt.Errorf("%w: --dir is required", errUsage)
	case *proto != config.ConsensusPBFT && *proto != config.ConsensusRaft:
		return fmt.Errorf("%w: --protocol %q: want pbft or raft", errUsage, *proto)
	}
	if *replicas == 0 {
		*replicas = 4
		if *proto == config.ConsensusRaft {
			*replicas = 3
		}
	}
	if err := config.CheckClusterSize(*proto, *replicas); err != nil {
		return fmt.Errorf("%w: --replicas: %w", errUsage, err)
	}
	switch {
	case *replicas > 100:
		return fmt.Errorf("%w: at most 100 replicas (replica ports P..P+99, metrics ports P+100..)", errUsage)
	case *basePort <= 0 || *basePort+100+*replicas > 65535:
		return fmt.Errorf("%w: --base-port %d leaves no room for %d replicas and their metrics ports", errUsage, *basePort, *replicas)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	var idBytes [6]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return err
	}
	cluster := config.ClusterFile{ClusterID: "testnet-" + hex.EncodeToString(idBytes[:]), Consensus: *proto}
	keys := make([]ed25519.PrivateKey, *replicas)
	for i := range keys {
		key, err := crypto.GenerateKey(nil)
		if err != nil {
			return err
		}
		keys[i] = key
		cluster.Replicas = append(cluster.Replicas, config.ReplicaRecord{
			Index:     uint32(i),
			PublicKey: keyfile.EncodePublicKey(key.Public().(ed25519.PublicKey)),
			Address:   fmt.Sprintf("/ip4/%s/tcp/%d", *host, *basePort+i),
		})
	}
	for i, key := range keys {
		home := filepath.Join(*dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(home, 0o700); err != nil {
			return err
		}
		if err := writeKey(filepath.Join(home, "key"), key); err != nil {
			return err
		}
		fc := config.FileConfig{
			ClusterFile:   cluster,
			Index:         uint32(i),
			KeyFile:       "key",
			DataDir:       "data",
			MetricsListen: fmt.Sprintf("%s:%d", *host, *basePort+100+i),
			UnsafeNoFsync: *noFsync,
		}
		if *proto == config.ConsensusRaft {
			fc.RaftSnapshotInterval = *snapshotInterval
		}
		if err := config.WriteJSON(filepath.Join(home, config.FileName), fc, 0o644); err != nil {
			return err
		}
	}
	clientKey, err := crypto.GenerateKey(nil)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(*dir, "client.key"), clientKey); err != nil {
		return err
	}
	if err := config.WriteJSON(filepath.Join(*dir, "client.json"), config.ClientFile{ClusterFile: cluster, KeyFile: "client.key"}, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote a %d-replica %s testnet (cluster %s) to %s\n", *replicas, *proto, cluster.ClusterID, *dir)
	for i := range keys {
		fmt.Fprintf(stdout, "  pbftnode run --home %s\n", filepath.Join(*dir, fmt.Sprintf("node%d", i)))
	}
	fmt.Fprintf(stdout, "then: pbftnode client --dir %s put a 1\n", *dir)
	return nil
}

// writeKey writes a key file, replacing an older one (testnet rewrites a
// directory).
func writeKey(path string, key ed25519.PrivateKey) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return keyfile.Write(path, key)
}
