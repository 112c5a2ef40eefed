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

// Concurrent reads of a Raft client, which go in ReadBatch frames and are
// answered in replies with read_answers, are all answered on the
// read-only path, each with the value of the write that completed before
// it began.
func TestConcurrentReadsAnsweredInBatches(t *testing.T) {
	dir := t.TempDir()
	base, err := pbftnode.FreeBasePort("127.0.0.1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.WriteTestnet(config.Testnet{Dir: dir, Replicas: 3, Consensus: config.ConsensusRaft, BasePort: base, UnsafeNoFsync: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
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
	}
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
