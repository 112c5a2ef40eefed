package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/pbftnode/pbftnode/config"
)

func runTestnet(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testnet", flag.ContinueOnError)
	replicas := fs.Int("replicas", 0, "number of replicas (default 4 for PBFT, n = 3f+1; 3 for Raft, n = 2f+1)")
	dir := fs.String("dir", "", "directory to write the testnet into (required)")
	basePort := fs.Int("base-port", config.DefaultBasePort, "replica i listens on 127.0.0.1:P+i and serves metrics on P+100+i")
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
	case *basePort <= 0:
		return fmt.Errorf("%w: --base-port %d: want a port number", errUsage, *basePort)
	}
	if *replicas != 0 {
		if err := config.CheckClusterSize(*proto, *replicas); err != nil {
			return fmt.Errorf("%w: --replicas: %w", errUsage, err)
		}
	}
	t := config.Testnet{
		Dir: *dir, Replicas: *replicas, Consensus: *proto, Host: *host, BasePort: *basePort,
		UnsafeNoFsync: *noFsync, RaftSnapshotInterval: *snapshotInterval,
	}
	cluster, err := config.WriteTestnet(t)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	fmt.Fprintf(stdout, "wrote a %d-replica %s testnet (cluster %s) to %s\n", len(cluster.Replicas), *proto, cluster.ClusterID, *dir)
	for i := range cluster.Replicas {
		fmt.Fprintf(stdout, "  pbftnode run --home %s\n", filepath.Join(*dir, fmt.Sprintf("node%d", i)))
	}
	fmt.Fprintf(stdout, "then: pbftnode client --dir %s put a 1\n", *dir)
	return nil
}
