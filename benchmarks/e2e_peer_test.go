package benchmarks

import (
	"context"
	"testing"
	"time"
)

// runPeerEndToEnd runs a short benchmark of peer when its executable is
// installed (skipping with the install command otherwise) and checks the
// figures came from the peer: puts and gets completed, none failed, the
// members used CPU.
func runPeerEndToEnd(t *testing.T, peer string, clients, window int) Result {
	t.Helper()
	if testing.Short() {
		t.Skipf("starts %s processes for a few seconds; skipped under -short", peer)
	}
	if _, err := FindPeer(peer, ""); err != nil {
		t.Skipf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Peer: peer, Clients: clients, Window: window, GetRatio: 0.5, Keys: 100,
		Duration: 1500 * time.Millisecond, Warmup: 500 * time.Millisecond, WorkDir: t.TempDir(), Keep: true,
	})
	if err != nil {
		t.Fatalf("bench --peer %s: %v", peer, err)
	}
	t.Logf("%s (%s): %.0f ops/s, p50 %.2f ms, p99 %.2f ms, %d reads, %d writes, %.3f CPU s/1k ops/member, %d connections",
		res.Label, res.PeerVersion, res.ThroughputOps, res.LatencyP50Ms, res.LatencyP99Ms, res.ReadOps, res.WriteOps,
		res.CPUSecondsPer1kOpsPerReplica, res.PeerConnections)
	if res.Protocol != peer || res.ReadOps == 0 || res.WriteOps == 0 || res.FailedOps != 0 {
		t.Errorf("protocol %q, %d reads, %d writes, %d failed: want %s, reads and writes, none failed",
			res.Protocol, res.ReadOps, res.WriteOps, res.FailedOps, peer)
	}
	if res.LatencyP50Ms <= 0 || res.CPUSecondsPer1kOpsPerReplica <= 0 || res.PeerVersion == "" {
		t.Errorf("p50 %v ms, CPU %v s/1k ops, version %q: want all measured", res.LatencyP50Ms, res.CPUSecondsPer1kOpsPerReplica, res.PeerVersion)
	}
	return res
}

// TestPeerEtcdEndToEnd runs `bench --peer etcd` for 1.5 s on 3 members.
func TestPeerEtcdEndToEnd(t *testing.T) {
	res := runPeerEndToEnd(t, PeerEtcd, 6, 2)
	if res.Replicas != 3 || res.PeerConnections != 4 || !res.Fsync {
		t.Errorf("n=%d, %d connections, fsync %v: want 3 members, 4 connections for 6 clients, fsync on", res.Replicas, res.PeerConnections, res.Fsync)
	}
}

// TestPeerCometBFTEndToEnd runs `bench --peer cometbft` for 1.5 s on 4
// validators.
func TestPeerCometBFTEndToEnd(t *testing.T) {
	res := runPeerEndToEnd(t, PeerCometBFT, 8, 1)
	if res.Replicas != 4 || res.CometBFTTimeoutCommitMs != 10 {
		t.Errorf("n=%d, timeout_commit %v ms: want 4 validators, 10 ms", res.Replicas, res.CometBFTTimeoutCommitMs)
	}
}
