package pbft_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
	"github.com/pbftnode/pbftnode/internal/opstest"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/pbft"
)

// TestNodeServesOperationsEndpoints starts one replica of a 4-replica
// cluster (the others never start) and reads its endpoints.
func TestNodeServesOperationsEndpoints(t *testing.T) {
	keys := make([]ed25519.PrivateKey, 4)
	replicas := make([]node.Replica, 4)
	for i := range keys {
		k, err := crypto.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		// Port 1 on loopback refuses connections: the peers are down.
		replicas[i] = node.Replica{Index: uint32(i), PublicKey: k.Public().(ed25519.PublicKey), Addr: "/ip4/127.0.0.1/tcp/1"}
	}
	n, err := pbft.Start(node.Config{
		ClusterID:   "http-test",
		Index:       0,
		Key:         keys[0],
		Replicas:    replicas,
		ListenAddr:  "/ip4/127.0.0.1/tcp/0",
		MetricsAddr: "127.0.0.1:0",
		DataDir:     filepath.Join(t.TempDir(), "data"),
		Sync:        false,
	}, nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer n.Close()
	base := "http://" + n.MetricsAddr()
	if code, _ := opstest.Get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := opstest.Get(t, base+"/readyz"); code != 503 {
		t.Fatalf("/readyz on an isolated fresh replica = %d %q, want 503", code, body)
	}
	code, body := opstest.Get(t, base+"/status")
	var r node.StatusReport
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil {
		t.Fatalf("/status = %d %s (%v)", code, body, err)
	}
	if r.Index != 0 || r.Replicas != 4 || r.View != 0 || !r.ViewActive || r.Ready || len(r.StateDigest) != 64 {
		t.Fatalf("/status = %+v", r)
	}
	if code, body := opstest.Get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "pbftnode_executed_sequence") {
		t.Fatalf("/metrics = %d", code)
	}
}

// waitReadyz polls addr's /readyz until its code is want and its body
// contains reason, or fails the test after a generous deadline.
func waitReadyz(t *testing.T, addr string, want int, reason string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := opstest.Get(t, "http://"+addr+"/readyz")
		if code == want && strings.Contains(body, reason) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz at %s = %d %q, want %d containing %q", addr, code, body, want, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadyzNeedsAQuorumOfPeers: a replica that executed requests is
// ready while it is connected to 2f other replicas, and stops being
// ready when they go down (issue 17: with 2 of 4 replicas down, /readyz
// answered 200 because the replica had executed something).
func TestReadyzNeedsAQuorumOfPeers(t *testing.T) {
	net := localnettest.Start(t, localnet.Options{Metrics: true})
	cl, err := net.NewClient(500 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := localnettest.PutAll(context.Background(), cl, "k", 3); err != nil {
		t.Fatal(err)
	}
	watched := net.Nodes[3]
	// The client needed f+1 replies only: wait for replica 3 to execute
	// them too.
	deadline := time.Now().Add(60 * time.Second)
	for watched.Status().ExecutedSequence < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("replica 3 did not execute the 3 puts: %+v", watched.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitReadyz(t, watched.MetricsAddr(), 200, "connected to 3 of 3 other replicas")
	for i := range 2 {
		if err := net.StopReplica(i); err != nil {
			t.Fatal(err)
		}
	}
	waitReadyz(t, watched.MetricsAddr(), 503, "no quorum: connected to 1 of 3 other replicas, a quorum needs 2")
}
