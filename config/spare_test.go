package config

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/keyfile"
)

// TestTestnetWritesSparesAndAdmins: testnet --spares K --admins M
// --admin-threshold T writes M administrator keys listed (with T) in every
// cluster file, and K spare homes after the replicas that load as spares:
// own index, key and address, the replicas as their genesis.
func TestTestnetWritesSparesAndAdmins(t *testing.T) {
	dir := t.TempDir()
	cluster, err := WriteTestnet(Testnet{Dir: dir, Replicas: 4, Spares: 2, Admins: 3, AdminThreshold: 2, BasePort: 27000})
	if err != nil {
		t.Fatal(err)
	}
	if len(cluster.Replicas) != 4 || len(cluster.Admins) != 3 || cluster.AdminThreshold != 2 {
		t.Fatalf("cluster: %d replicas, %d admins, threshold %d; want 4, 3, 2", len(cluster.Replicas), len(cluster.Admins), cluster.AdminThreshold)
	}
	for i, admin := range cluster.Admins {
		key, err := keyfile.Read(filepath.Join(dir, AdminKeyFile(i)))
		if err != nil {
			t.Fatal(err)
		}
		if got := keyfile.EncodePublicKey(key.Public().(ed25519.PublicKey)); got != admin {
			t.Fatalf("admin%d.pem holds %s, the cluster lists %s", i, got, admin)
		}
	}
	var client ClientFile
	if err := ReadJSON(filepath.Join(dir, "client.json"), &client); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(client.Admins, cluster.Admins) || client.AdminThreshold != 2 {
		t.Fatalf("client.json admins %v (threshold %d), want %v (2)", client.Admins, client.AdminThreshold, cluster.Admins)
	}
	member, err := Load(filepath.Join(dir, "node3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if member.Spare || member.Self.Address != cluster.Replicas[3].Address {
		t.Fatalf("node3: spare %v, self %+v", member.Spare, member.Self)
	}
	for i := 4; i < 6; i++ {
		h, err := Load(filepath.Join(dir, fmt.Sprintf("node%d", i)), nil)
		if err != nil {
			t.Fatalf("spare node%d: %v", i, err)
		}
		want := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 27000+i)
		if !h.Spare || h.Self.Index != uint32(i) || h.Self.Address != want || h.ListenAddr != want || !h.Self.PublicKey.Equal(h.Key.Public()) {
			t.Fatalf("node%d: spare %v, self %d %s, listen %s", i, h.Spare, h.Self.Index, h.Self.Address, h.ListenAddr)
		}
		if h.File.MetricsListen != fmt.Sprintf("127.0.0.1:%d", 27100+i) {
			t.Fatalf("node%d: metrics_listen %s", i, h.File.MetricsListen)
		}
		if len(h.Genesis.Members) != 4 || h.Genesis.Epoch != 0 || len(h.Genesis.Admins) != 3 || h.Genesis.AdminThreshold != 2 {
			t.Fatalf("node%d: genesis %d members, epoch %d, %d admins", i, len(h.Genesis.Members), h.Genesis.Epoch, len(h.Genesis.Admins))
		}
	}
}

// TestSpareHomeRules: a home whose index is not among the replicas loads
// as a spare only with an address of its own and a key of its own; a
// member's home may not give another address than its record's.
func TestSpareHomeRules(t *testing.T) {
	spare := func(fc *FileConfig) {
		fc.Replicas[0].PublicKey = keyfile.EncodePublicKey(seededPublicKey(99))
		fc.Index, fc.Address = 4, "/ip4/127.0.0.1/tcp/26604"
	}
	home, _ := writeHome(t, ConsensusPBFT, 4, spare)
	h, err := Load(home, nil)
	if err != nil {
		t.Fatalf("a spare's home: %v", err)
	}
	if !h.Spare || h.Self.Index != 4 || h.ListenAddr != "/ip4/127.0.0.1/tcp/26604" {
		t.Fatalf("spare %v, self %+v, listen %s", h.Spare, h.Self, h.ListenAddr)
	}
	for _, c := range []struct {
		name, want string
		edit       func(*FileConfig)
	}{
		{"no address", "address is empty", func(fc *FileConfig) { spare(fc); fc.Address = "" }},
		{"a member's address", "is replica 2's", func(fc *FileConfig) { spare(fc); fc.Address = "/ip4/127.0.0.1/tcp/26602" }},
		{"bad address", "address \"nope\"", func(fc *FileConfig) { spare(fc); fc.Address = "nope" }},
		{"a member's key", "holds replica 0's key", func(fc *FileConfig) { fc.Index, fc.Address = 4, "/ip4/127.0.0.1/tcp/26604" }},
		{"member with another address", "differs from replica 0's", func(fc *FileConfig) { fc.Address = "/ip4/127.0.0.1/tcp/26609" }},
	} {
		home, _ := writeHome(t, ConsensusPBFT, 4, c.edit)
		_, problems := checkHome(t, home)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%s: problems %q, want one saying %q", c.name, problems, c.want)
		}
	}
}

// TestBadAdminsRefused: admins that are not public keys, listed twice, or
// a threshold above their number make the configuration invalid.
func TestBadAdminsRefused(t *testing.T) {
	a, b := keyfile.EncodePublicKey(seededPublicKey(50)), keyfile.EncodePublicKey(seededPublicKey(51))
	home, _ := writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) { fc.Admins, fc.AdminThreshold = []string{a, b}, 2 })
	if _, problems := checkHome(t, home); len(problems) > 0 {
		t.Fatalf("2 of 2 admins: %q", problems)
	}
	for name, edit := range map[string]func(*FileConfig){
		"not a key":       func(fc *FileConfig) { fc.Admins = []string{"zz"} },
		"listed twice":    func(fc *FileConfig) { fc.Admins = []string{a, a} },
		"threshold above": func(fc *FileConfig) { fc.Admins, fc.AdminThreshold = []string{a}, 2 },
		"no admins":       func(fc *FileConfig) { fc.AdminThreshold = 1 },
	} {
		home, _ := writeHome(t, ConsensusPBFT, 4, edit)
		_, problems := checkHome(t, home)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, "admins:") }) {
			t.Errorf("%s: problems %q, want an admins problem", name, problems)
		}
	}
}
