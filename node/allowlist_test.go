package node

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/p2p/identity"
)

// allowlistHome writes a replica home (replica 0 of 4, plain key) whose
// config.json has the given client_allowlist.
func allowlistHome(t *testing.T, allowlist []string) string {
	t.Helper()
	home := t.TempDir()
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyfile.Write(filepath.Join(home, "key"), key); err != nil {
		t.Fatal(err)
	}
	replicas := make([]config.ReplicaRecord, 4)
	for i := range replicas {
		pub := key.Public().(ed25519.PublicKey)
		if i > 0 {
			pub = newPublicKey(t)
		}
		replicas[i] = config.ReplicaRecord{Index: uint32(i), PublicKey: keyfile.EncodePublicKey(pub), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 1+i)}
	}
	fc := config.FileConfig{ClusterFile: config.ClusterFile{ClusterID: "c", Replicas: replicas}, ClientAllowlist: allowlist}
	if err := config.WriteJSON(filepath.Join(home, config.FileName), fc, 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}

func newPublicKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	k, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().(ed25519.PublicKey)
}

func TestLoadHomeClientAllowlist(t *testing.T) {
	a, b := newPublicKey(t), newPublicKey(t)
	home := allowlistHome(t, []string{keyfile.EncodePublicKey(a), keyfile.EncodePublicKey(b)})
	raw, err := os.ReadFile(filepath.Join(home, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"client_allowlist": [`) {
		t.Fatalf("config.json does not spell the field client_allowlist:\n%s", raw)
	}
	cfg, err := LoadHome(home, nil)
	if err != nil {
		t.Fatalf("LoadHome: %v", err)
	}
	if len(cfg.ClientAllowlist) != 2 || !cfg.ClientAllowlist[0].Equal(a) || !cfg.ClientAllowlist[1].Equal(b) {
		t.Fatalf("ClientAllowlist = %x, want [%x %x]", cfg.ClientAllowlist, a, b)
	}
	// The transport gets the keys' peer IDs.
	for i, pub := range []ed25519.PublicKey{a, b} {
		want, err := identity.PeerIDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.clientPeers) != 2 || cfg.clientPeers[i] != want {
			t.Fatalf("client peer IDs = %v, want %s at %d", cfg.clientPeers, want, i)
		}
	}

	// No client_allowlist: any client, as before.
	cfg, err = LoadHome(allowlistHome(t, nil), nil)
	if err != nil {
		t.Fatalf("LoadHome without an allowlist: %v", err)
	}
	if cfg.ClientAllowlist != nil || cfg.clientPeers != nil {
		t.Fatalf("no client_allowlist gave ClientAllowlist %x, peers %v", cfg.ClientAllowlist, cfg.clientPeers)
	}
}

func TestConfigClientAllowlistShortKey(t *testing.T) {
	cfg := Config{
		ClusterID:       "c",
		Key:             ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)),
		DataDir:         t.TempDir(),
		ClientAllowlist: []ed25519.PublicKey{newPublicKey(t), make(ed25519.PublicKey, 3)},
	}
	cfg.Replicas = []Replica{{Index: 0, PublicKey: cfg.Key.Public().(ed25519.PublicKey)}}
	err := cfg.ApplyDefaults()
	if err == nil || !strings.Contains(err.Error(), "client allowlist entry 1") {
		t.Fatalf("ApplyDefaults with a 3-byte allowlist key: %v", err)
	}
}
