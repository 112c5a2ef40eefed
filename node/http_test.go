package node

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/keyfile"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestOpsHandlerReadinessAndStatus(t *testing.T) {
	st := Status{Index: 2, View: 3, ViewActive: true, ExecutedSequence: 0, StableCheckpoint: 0}
	st.StateDigest[0] = 0xab
	peers, peersKnown := 0, false
	srv := httptest.NewServer(newOpsHandler(prometheus.NewRegistry(), opsState{
		replicas:    4,
		quorumPeers: 2,
		status:      func() Status { return st },
		peers:       func() (int, bool) { return peers, peersKnown },
	}))
	defer srv.Close()

	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	check := func(wantCode int, wantReason string) {
		t.Helper()
		code, body := get(t, srv.URL+"/readyz")
		if code != wantCode || !strings.Contains(body, wantReason) {
			t.Fatalf("/readyz = %d %q, want %d containing %q", code, body, wantCode, wantReason)
		}
	}
	check(503, "nothing executed yet")
	peersKnown, peers = true, 1
	check(503, "a quorum needs 2")
	peers = 2
	check(200, "connected to 2 of 3")
	peersKnown = false
	st.ExecutedSequence = 7
	check(200, "executed up to sequence 7")
	st.ViewActive = false
	check(503, "changing view")
	st.ViewActive, st.Transferring = true, true
	check(503, "state transfer")
	st.Transferring = false

	code, body := get(t, srv.URL+"/status")
	if code != 200 {
		t.Fatalf("/status = %d", code)
	}
	var r StatusReport
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	if r.Index != 2 || r.View != 3 || !r.ViewActive || r.ExecutedSequence != 7 || !r.Ready || r.Replicas != 4 ||
		!strings.HasPrefix(r.StateDigest, "ab00") || len(r.StateDigest) != 64 || r.ConnectedPeers != nil {
		t.Fatalf("/status = %+v", r)
	}
	if strings.Contains(body, "connected_peers") {
		t.Fatalf("/status reports connected_peers though the transport does not: %s", body)
	}
	peersKnown, peers = true, 3
	_, body = get(t, srv.URL+"/status")
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.ConnectedPeers == nil || *r.ConnectedPeers != 3 {
		t.Fatalf("/status with peers = %s (%v)", body, err)
	}
}

// TestNodeServesOperationsEndpoints starts one replica of a 4-replica
// cluster (the others never start) and reads its endpoints.
func TestNodeServesOperationsEndpoints(t *testing.T) {
	keys := make([]ed25519.PrivateKey, 4)
	replicas := make([]Replica, 4)
	for i := range keys {
		k, err := crypto.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		// Port 1 on loopback refuses connections: the peers are down.
		replicas[i] = Replica{Index: uint32(i), PublicKey: k.Public().(ed25519.PublicKey), Addr: "/ip4/127.0.0.1/tcp/1"}
	}
	n, err := Start(Config{
		ClusterID:   "http-test",
		Index:       0,
		Key:         keys[0],
		Replicas:    replicas,
		ListenAddr:  "/ip4/127.0.0.1/tcp/0",
		MetricsAddr: "127.0.0.1:0",
		DataDir:     filepath.Join(t.TempDir(), "data"),
		Sync:        false,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer n.Close()
	base := "http://" + n.MetricsAddr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 {
		t.Fatalf("/readyz on an isolated fresh replica = %d %q, want 503", code, body)
	}
	code, body := get(t, base+"/status")
	var r StatusReport
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil {
		t.Fatalf("/status = %d %s (%v)", code, body, err)
	}
	if r.Index != 0 || r.Replicas != 4 || r.View != 0 || !r.ViewActive || r.Ready || len(r.StateDigest) != 64 {
		t.Fatalf("/status = %+v", r)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "pbftnode_executed_sequence") {
		t.Fatalf("/metrics = %d", code)
	}
}

func TestLoadHomeEncryptedKey(t *testing.T) {
	home := t.TempDir()
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyfile.WriteEncryptedParams(filepath.Join(home, "key"), key, []byte("hunter2"), keyfile.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	others := make([]ReplicaRecord, 4)
	for i := range others {
		pub := key.Public().(ed25519.PublicKey)
		if i > 0 {
			k, _ := crypto.GenerateKey(nil)
			pub = k.Public().(ed25519.PublicKey)
		}
		others[i] = ReplicaRecord{Index: uint32(i), PublicKey: keyfile.EncodePublicKey(pub), Address: "/ip4/127.0.0.1/tcp/1"}
	}
	fc := FileConfig{ClusterFile: ClusterFile{ClusterID: "c", Replicas: others}}
	writeConfig := func() {
		t.Helper()
		if err := WriteJSON(filepath.Join(home, ConfigFileName), fc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig()

	t.Setenv(PassphraseEnv, "")
	if _, err := LoadHome(home); err == nil || !strings.Contains(err.Error(), PassphraseEnv) {
		t.Fatalf("LoadHome without a passphrase: %v", err)
	}
	t.Setenv(PassphraseEnv, "wrong")
	if _, err := LoadHome(home); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("LoadHome with a wrong passphrase: %v", err)
	}
	t.Setenv(PassphraseEnv, "hunter2")
	if cfg, err := LoadHome(home); err != nil || !cfg.Key.Equal(key) {
		t.Fatalf("LoadHome with the passphrase in the environment: %v", err)
	}

	t.Setenv(PassphraseEnv, "")
	if err := os.WriteFile(filepath.Join(home, "pass"), []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc.KeyPassphraseFile = "pass"
	writeConfig()
	if cfg, err := LoadHome(home); err != nil || !cfg.Key.Equal(key) {
		t.Fatalf("LoadHome with key_passphrase_file: %v", err)
	}
}
