package pbftnode_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/client"
)

// writeTestnet writes a testnet of n replicas on free loopback ports in a
// temporary directory and returns the directory.
func writeTestnet(t *testing.T, consensus string, n int, application string) string {
	t.Helper()
	dir := t.TempDir()
	base, err := pbftnode.FreeBasePort("127.0.0.1", n)
	if err != nil {
		t.Fatal(err)
	}
	err = pbftnode.WriteTestnet(pbftnode.Testnet{Dir: dir, Replicas: n, Consensus: consensus, BasePort: base, Application: application})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// A library replica runs the application it is given: a home whose
// configuration names another one is refused, not silently overridden.
func TestStartReplicaRefusesAHomeNamingAnotherApplication(t *testing.T) {
	dir := writeTestnet(t, pbftnode.PBFT, 4, "kv")
	r, err := pbftnode.StartReplica(pbftnode.TestnetHome(dir, 0), &adder{})
	if err == nil {
		_ = r.Close()
		t.Fatal("StartReplica ran a home whose configuration names application kv")
	}
	if !strings.Contains(err.Error(), `names application "kv"`) {
		t.Fatalf("error does not say why: %v", err)
	}
	if _, err := pbftnode.StartReplica(pbftnode.TestnetHome(dir, 0), nil); err == nil {
		t.Fatal("StartReplica accepted no application")
	}
}

// ClientConfig asks f+1 matching replies of a PBFT cluster (the client's
// default, 0) and one of a Raft cluster, and reads the testnet's key.
func TestClientConfigReplyQuorum(t *testing.T) {
	for _, tc := range []struct {
		consensus string
		n         int
		quorum    int
	}{{pbftnode.PBFT, 4, 0}, {pbftnode.Raft, 3, 1}} {
		cfg, err := pbftnode.ClientConfig(writeTestnet(t, tc.consensus, tc.n, ""))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ReplyQuorum != tc.quorum || len(cfg.Replicas) != tc.n || len(cfg.Key) == 0 || cfg.ClusterID == "" {
			t.Fatalf("%s: ClientConfig = quorum %d, %d replicas, key %d bytes, cluster %q", tc.consensus, cfg.ReplyQuorum, len(cfg.Replicas), len(cfg.Key), cfg.ClusterID)
		}
	}
	if _, err := pbftnode.Dial(t.TempDir()); err == nil {
		t.Fatal("Dial of a directory without client.json succeeded")
	}
}

// Dial applies its options in order, after ClientConfig.
func TestDialAppliesOptions(t *testing.T) {
	dir := writeTestnet(t, pbftnode.PBFT, 4, "")
	var seen client.Config
	c, err := pbftnode.Dial(dir, func(cfg *client.Config) { cfg.Window = 7 }, func(cfg *client.Config) { seen = *cfg })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if seen.Window != 7 || seen.ReplyQuorum != 0 {
		t.Fatalf("options saw %+v", seen)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A replica restarted with its application's memory lost brings the new
// application back to the replica's state (restore and replay of what
// the replica recorded) and then executes with the others: every
// application ends with the same total.
func TestRestartedReplicaRestoresItsApplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	dir := writeTestnet(t, pbftnode.PBFT, 4, "")
	apps := make([]*adder, 4)
	replicas := make([]*pbftnode.Replica, 4)
	start := func(i int) {
		apps[i] = &adder{}
		r, err := pbftnode.StartReplica(pbftnode.TestnetHome(dir, i), apps[i])
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = r
	}
	for i := range 4 {
		start(i)
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			_ = r.Close()
		}
	})
	c, err := pbftnode.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	add := func(n int) {
		for range n {
			if _, err := c.Invoke(ctx, []byte("1")); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(10)
	total := func(a *adder) string { b, _ := a.Query(ctx, nil); return string(b) }
	waitFor(t, "replica 3 to execute the first 10 operations", func() bool { return total(apps[3]) == "10" })
	if err := replicas[3].Close(); err != nil {
		t.Fatal(err)
	}
	start(3) // a fresh application: total 0, sequence 0
	add(10)
	waitFor(t, "every application to hold 20", func() bool {
		first, _ := apps[0].Info(ctx)
		for _, a := range apps {
			if st, _ := a.Info(ctx); total(a) != "20" || st != first {
				return false
			}
		}
		return true
	})
}

// FreeBasePort's ranges can be listened on, below the ephemeral range.
func TestFreeBasePort(t *testing.T) {
	for range 5 {
		base, err := pbftnode.FreeBasePort("127.0.0.1", 4)
		if err != nil {
			t.Fatal(err)
		}
		if base < 20000 || base+104 > 32768 {
			t.Fatalf("base port %d outside 20000..32767", base)
		}
		for _, p := range []int{base, base + 3, base + 100, base + 103} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Fatalf("port %d of base %d: %v", p, base, err)
			}
			_ = l.Close()
		}
	}
	if _, err := pbftnode.FreeBasePort("127.0.0.1", 101); err == nil {
		t.Fatal("FreeBasePort accepted 101 replicas")
	}
}
