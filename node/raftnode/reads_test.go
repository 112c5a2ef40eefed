package raftnode_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	pbftnode "github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/raftnode"
)

// startCluster writes testnet tn into dir (on free ports) and starts
// every replica of it, spares included, closing them when the test ends.
func startCluster(t *testing.T, dir string, tn config.Testnet) (map[int]*raftnode.Node, map[int]node.Config) {
	t.Helper()
	base, err := pbftnode.FreeBasePort("127.0.0.1", tn.Replicas+tn.Spares+1)
	if err != nil {
		t.Fatal(err)
	}
	tn.Dir, tn.BasePort = dir, base
	if _, err := config.WriteTestnet(tn); err != nil {
		t.Fatal(err)
	}
	nodes, cfgs := map[int]*raftnode.Node{}, map[int]node.Config{}
	for i := range tn.Replicas + tn.Spares {
		nodes[i], cfgs[i] = startReplica(t, dir, i)
	}
	return nodes, cfgs
}

// startReplica starts replica i of the testnet in dir, without metrics or
// logs, closing it when the test ends.
func startReplica(t *testing.T, dir string, i int) (*raftnode.Node, node.Config) {
	t.Helper()
	cfg, err := node.LoadHome(pbftnode.TestnetHome(dir, i), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MetricsAddr = ""
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := raftnode.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, cfg
}

// Concurrent reads of a Raft client, which go in ReadBatch frames and are
// answered in replies with read_answers, are all answered on the
// read-only path, each with the value of the write that completed before
// it began.
func TestConcurrentReadsAnsweredInBatches(t *testing.T) {
	dir := t.TempDir()
	startCluster(t, dir, config.Testnet{Replicas: 3, Consensus: config.ConsensusRaft, UnsafeNoFsync: true})
	cl, err := pbftnode.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	const readers = 64
	for _, value := range []string{"one", "two"} {
		if _, err := cl.Invoke(ctx, execution.EncodePut([]byte("k"), []byte(value))); err != nil {
			t.Fatalf("put %s: %v", value, err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for range readers {
			wg.Go(func() {
				raw, err := cl.Read(ctx, execution.EncodeGet([]byte("k")))
				if err == nil {
					res, derr := execution.DecodeResult(raw)
					if err = derr; err == nil && string(res.GetValue()) != value {
						t.Errorf("read %q after the put of %q", res.GetValue(), value)
					}
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("read: %v", err)
			}
		}
	}
	if got := cl.ReadCounts(); got.Fast != 2*readers || got.Fallback != 0 {
		t.Errorf("read counts %+v, want %d on the read-only path", got, 2*readers)
	}
}
