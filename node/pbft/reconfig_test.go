package pbft_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pbftnode "github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/receipt"
)

const reconfigWait = 90 * time.Second

// waitFor polls cond until it holds, failing the test after reconfigWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	localnettest.WaitFor(t, what, reconfigWait, cond)
}

// reconfigCluster is an in-process PBFT testnet with spares.
type reconfigCluster struct {
	t     *testing.T
	dir   string
	mu    sync.Mutex
	nodes map[int]*pbft.Node
	cfgs  map[int]node.Config
}

func (c *reconfigCluster) start(i int, key ed25519.PrivateKey) {
	t := c.t
	t.Helper()
	cfg, err := node.LoadHome(pbftnode.TestnetHome(c.dir, i), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MetricsAddr = ""
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.PBFT.CheckpointInterval = 16
	if key != nil {
		cfg.Key = key
	}
	n, err := pbft.Start(cfg, nil)
	if err != nil {
		t.Fatalf("start replica %d: %v", i, err)
	}
	c.mu.Lock()
	c.nodes[i], c.cfgs[i] = n, cfg
	c.mu.Unlock()
}

func (c *reconfigCluster) stop(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	delete(c.nodes, i)
	c.mu.Unlock()
	_ = n.Close()
}

// agree reports whether the running replicas among indices report epoch
// and members.
func (c *reconfigCluster) agree(epoch uint64, members []uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range members {
		n, ok := c.nodes[int(i)]
		if !ok {
			continue
		}
		st := n.Status()
		if st.Epoch != epoch || !slices.Equal(st.Members, members) {
			return false
		}
	}
	return true
}

// converged reports whether the running members executed the same
// sequence with the same state digest.
func (c *reconfigCluster) converged(members []uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first *node.Status
	for _, i := range members {
		st := c.nodes[int(i)].Status()
		if first == nil {
			first = &st
		} else if st.ExecutedSequence != first.ExecutedSequence || st.StateDigest != first.StateDigest {
			return false
		}
	}
	return true
}

// A PBFT cluster of 4 adds a spare (n=5), removes a member and rotates a
// key (the replica restarts with the new key) while a client writes:
// after each change every member agrees on the epoch and the members, at
// the end on the state, and every acknowledged write reads back.
func TestReconfigurationAddRemoveRotate(t *testing.T) {
	if testing.Short() {
		t.Skip("a multi-epoch cluster run")
	}
	dir := t.TempDir()
	base, err := pbftnode.FreeBasePort("127.0.0.1", 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.WriteTestnet(config.Testnet{Dir: dir, Replicas: 4, Spares: 1, BasePort: base, UnsafeNoFsync: true}); err != nil {
		t.Fatal(err)
	}
	c := &reconfigCluster{t: t, dir: dir, nodes: map[int]*pbft.Node{}, cfgs: map[int]node.Config{}}
	for i := range 5 {
		c.start(i, nil)
	}
	t.Cleanup(func() {
		for i := range 5 {
			c.mu.Lock()
			_, ok := c.nodes[i]
			c.mu.Unlock()
			if ok {
				c.stop(i)
			}
		}
	})
	adminKey, err := keyfile.Read(filepath.Join(dir, config.AdminKeyFile(0)))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := pbftnode.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// The writer: sequential puts; each acknowledged one is recorded.
	ctx, stopWriter := context.WithCancel(context.Background())
	var acked []int
	var ackedCount atomic.Int64 // len(acked), for waiting while the writer runs
	var writerDone sync.WaitGroup
	writerDone.Add(1)
	go func() {
		defer writerDone.Done()
		for k := 1; ctx.Err() == nil; k++ {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := cl.Invoke(wctx, execution.EncodePut([]byte(fmt.Sprintf("w%d", k)), []byte(fmt.Sprint(k))))
			cancel()
			if err == nil {
				acked = append(acked, k)
				ackedCount.Add(1)
			}
		}
	}()

	// The counters' gauges run across epochs: each epoch has a core of
	// its own, counting from 0, and replica 0's gauge of COMMITs taken on
	// their author's session must never go down.
	stopSampler := sampleMonotonic(t, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.nodes[0].MetricValue("pbftnode_commits_by_channel")
	})

	mustAccept := func(ch membership.Change) {
		t.Helper()
		localnettest.MustChangeConfig(t, cl, adminKey, ch, reconfigWait)
	}

	mustAccept(membership.Change{Epoch: 0, Kind: membership.AddReplica, Member: c.cfgs[4].Self})
	waitFor(t, "epoch 1 with members 0-4", func() bool { return c.agree(1, []uint32{0, 1, 2, 3, 4}) })

	mustAccept(membership.Change{Epoch: 1, Kind: membership.RemoveReplica, Member: membership.Member{Index: 1}})
	waitFor(t, "epoch 2 without replica 1", func() bool { return c.agree(2, []uint32{0, 2, 3, 4}) })
	c.stop(1)

	rotated := newKey(t)
	rec := c.cfgs[2].Self
	rec.PublicKey = rotated.Public().(ed25519.PublicKey)
	mustAccept(membership.Change{Epoch: 2, Kind: membership.RotateKey, Member: rec})
	c.stop(2)
	c.start(2, rotated)
	waitFor(t, "epoch 3 with replica 2's new key", func() bool { return c.agree(3, []uint32{0, 2, 3, 4}) })
	waitFor(t, "replica 2 to execute under its new key", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.nodes[2].Status().ExecutedSequence > 0 && c.nodes[2].Status().ViewActive
	})

	if samples, last := stopSampler(); last == 0 {
		t.Fatalf("replica 0 counted no COMMIT by channel in %d samples", samples)
	}

	c.mu.Lock()
	gauge := c.nodes[0].MetricValue("pbftnode_epoch")
	c.mu.Unlock()
	if gauge != 3 {
		t.Fatalf("pbftnode_epoch = %v, want 3", gauge)
	}

	// A joiner's config_query learns the verified history: epochs 1-3.
	qctx, qcancel := context.WithTimeout(context.Background(), reconfigWait)
	c.mu.Lock()
	spare := c.nodes[4]
	c.mu.Unlock()
	h, ok, err := pbft.QueryHistory(qctx, spare)
	qcancel()
	if err != nil || !ok || len(h.Certificates) != 3 || h.Certificates[2].Config.Epoch != 3 {
		t.Fatalf("config_query history: %d certificates, ok %v, err %v", len(h.Certificates), ok, err)
	}

	// A receipt taken in epoch 3 (signed by members that include the
	// joiner and the rotated key) verifies against the genesis cluster
	// file alone: it carries the certificate chain.
	checkReceiptInEpoch(t, cl, dir, 3)

	// The writer must get writes through in the last epoch too.
	inLastEpoch := ackedCount.Load()
	waitFor(t, "writes acknowledged in epoch 3", func() bool { return ackedCount.Load() >= inLastEpoch+3 })
	stopWriter()
	writerDone.Wait()
	waitFor(t, "the members to converge", func() bool { return c.converged([]uint32{0, 2, 3, 4}) })
	if len(acked) < 5 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	rctx, cancel := context.WithTimeout(context.Background(), reconfigWait)
	defer cancel()
	for _, k := range acked {
		raw, err := cl.Invoke(rctx, execution.EncodeGet([]byte(fmt.Sprintf("w%d", k))))
		if err != nil {
			t.Fatalf("get w%d: %v", k, err)
		}
		if res, err := execution.DecodeResult(raw); err != nil || !res.Ok || string(res.Value) != fmt.Sprint(k) {
			t.Fatalf("acknowledged write w%d reads back %+v (%v)", k, res, err)
		}
	}
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkReceiptInEpoch takes a receipt for a put and checks it names epoch
// and verifies against the testnet's genesis cluster file.
func checkReceiptInEpoch(t *testing.T, cl *client.Client, dir string, epoch uint64) {
	t.Helper()
	var cluster config.ClusterFile
	if err := config.ReadJSON(filepath.Join(dir, "cluster.json"), &cluster); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reconfigWait)
	defer cancel()
	for {
		_, rec, err := cl.InvokeWithReceipt(ctx, execution.EncodePut([]byte("receipted"), []byte("1")))
		if err != nil {
			t.Fatalf("put with a receipt: %v", err)
		}
		if rec.Epoch < epoch {
			continue // the client had not followed yet
		}
		if rec.Epoch != epoch || rec.History == "" {
			t.Fatalf("receipt names epoch %d (history %d hex characters), want epoch %d with a history", rec.Epoch, len(rec.History), epoch)
		}
		if err := receipt.Verify(rec, cluster); err != nil {
			t.Fatalf("the epoch %d receipt does not verify against the genesis cluster file: %v", epoch, err)
		}
		return
	}
}

// sampleMonotonic reads value every few milliseconds until the returned
// stop is called, failing the test if a reading is below the one before;
// stop returns how many readings it took and the last.
func sampleMonotonic(t *testing.T, value func() float64) (stop func() (int, float64)) {
	t.Helper()
	done := make(chan struct{})
	type result struct {
		samples int
		last    float64
		err     string
	}
	out := make(chan result, 1)
	go func() {
		var r result
		ticker := time.NewTicker(5 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				out <- r
				return
			case <-ticker.C:
				v := value()
				if v < r.last && r.err == "" {
					r.err = fmt.Sprintf("went down from %v to %v after %d readings", r.last, v, r.samples)
				}
				r.samples, r.last = r.samples+1, v
			}
		}
	}()
	return func() (int, float64) {
		close(done)
		r := <-out
		if r.err != "" {
			t.Fatalf("a counter's gauge %s", r.err)
		}
		return r.samples, r.last
	}
}
