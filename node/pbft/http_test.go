package pbft_test

import (
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
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
