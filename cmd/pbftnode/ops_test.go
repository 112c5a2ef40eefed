package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/node"
)

var (
	pubLine  = regexp.MustCompile(`(?m)^public_key: ([0-9a-f]{64})$`)
	peerLine = regexp.MustCompile(`(?m)^peer_id: (12D3Koo\w+)$`)
)

// keygenOK runs keygen and returns the printed public key.
func keygenOK(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := cli(t, append([]string{"keygen"}, args...)...)
	if code != 0 {
		t.Fatalf("keygen %v: exit %d: %s", args, code, stderr)
	}
	m := pubLine.FindStringSubmatch(stdout)
	if m == nil || !peerLine.MatchString(stdout) {
		t.Fatalf("keygen output lacks the public key or peer ID:\n%s", stdout)
	}
	return m[1]
}

func pubHex(key ed25519.PrivateKey) string {
	return keyfile.EncodePublicKey(key.Public().(ed25519.PublicKey))
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(config.PassphraseEnv, "")

	plain := filepath.Join(dir, "plain.key")
	pub := keygenOK(t, "--out", plain)
	key, err := keyfile.Read(plain)
	if err != nil || pubHex(key) != pub {
		t.Fatalf("the plain key file does not hold the printed key: %v", err)
	}
	if info, _ := os.Stat(plain); info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %#o", info.Mode().Perm())
	}
	if code, _, stderr := cli(t, "keygen", "--out", plain); code != 1 || !strings.Contains(stderr, "exists") {
		t.Fatalf("keygen over an existing file: exit %d: %s", code, stderr)
	}
	if code, _, _ := cli(t, "keygen"); code != 2 {
		t.Fatalf("keygen without --out: exit %d, want 2", code)
	}
	if code, _, stderr := cli(t, "keygen", "--out", filepath.Join(dir, "x.key"), "--encrypt"); code != 2 || !strings.Contains(stderr, config.PassphraseEnv) {
		t.Fatalf("keygen --encrypt without a passphrase: exit %d: %s", code, stderr)
	}

	// Passphrase from a file.
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("file secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "enc.key")
	code, stdout, stderr := cli(t, "keygen", "--out", enc, "--encrypt", "--passphrase-file", passFile)
	if code != 0 || strings.Contains(stdout+stderr, "file secret") {
		t.Fatalf("keygen --encrypt --passphrase-file: exit %d (or the passphrase was echoed): %s%s", code, stdout, stderr)
	}
	pub = pubLine.FindStringSubmatch(stdout)[1]
	if _, err := keyfile.Read(enc); err == nil {
		t.Fatal("the encrypted key file reads without a passphrase")
	}
	key, err = keyfile.ReadWithPassphrase(enc, func() ([]byte, error) { return []byte("file secret"), nil })
	if err != nil || pubHex(key) != pub {
		t.Fatalf("the encrypted key file does not hold the printed key: %v", err)
	}

	// Passphrase from the environment.
	t.Setenv(config.PassphraseEnv, "env secret")
	enc2 := filepath.Join(dir, "enc2.key")
	pub = keygenOK(t, "--out", enc2, "--encrypt")
	key, err = keyfile.ReadWithPassphrase(enc2, func() ([]byte, error) { return []byte("env secret"), nil })
	if err != nil || pubHex(key) != pub {
		t.Fatalf("encrypted with the environment's passphrase: %v", err)
	}
}

// cheapKDF keeps tests that write encrypted keys directly fast.
var cheapKDF = keyfile.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func editConfig(t *testing.T, home string, edit func(fc *config.FileConfig)) {
	t.Helper()
	path := filepath.Join(home, config.FileName)
	var fc config.FileConfig
	if err := config.ReadJSON(path, &fc); err != nil {
		t.Fatal(err)
	}
	edit(&fc)
	if err := config.WriteJSON(path, fc, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Setenv(config.PassphraseEnv, "")
	dir := t.TempDir()
	writeTestnet(t, dir, 27600)
	home := func(i int) string { return filepath.Join(dir, "node"+string(rune('0'+i))) }

	code, stdout, stderr := cli(t, "config", "validate", "--home", home(0))
	if code != 0 || !strings.HasPrefix(stdout, "ok\n") || !strings.Contains(stdout, "4 replicas, tolerates f=1") || !strings.Contains(stdout, "(plain)") {
		t.Fatalf("validate a testnet home: exit %d\n%s%s", code, stdout, stderr)
	}

	// Many problems at once, all listed.
	editConfig(t, home(1), func(fc *config.FileConfig) {
		fc.Replicas[2].PublicKey = fc.Replicas[3].PublicKey
		fc.Replicas[3].Address = "/ip4/not-an-ip/tcp/1"
		fc.Replicas[0].Address = fc.Replicas[2].Address
		fc.MetricsListen = "no-port"
		fc.TickInterval = "soon"
		fc.Index = 9
	})
	code, stdout, _ = cli(t, "config", "validate", "--home", home(1))
	if code != 1 {
		t.Fatalf("validate a broken home: exit %d\n%s", code, stdout)
	}
	for _, want := range []string{
		"replica 3 has the same public_key as replica 2",
		"replica 3 address",
		"replica 2 has the same address",
		"metrics_listen",
		"tick_interval",
		"index 9 is outside the 4 replicas",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stdout)
		}
	}

	// The key does not match the replica's public key: a warning while
	// the cluster names administrators (the key may have been rotated:
	// the replica starts as a joiner), a problem without them.
	editConfig(t, home(2), func(fc *config.FileConfig) {
		fc.Replicas[2].PublicKey, fc.Replicas[3].PublicKey = fc.Replicas[3].PublicKey, fc.Replicas[2].PublicKey
	})
	if code, stdout, stderr := cli(t, "config", "validate", "--home", home(2)); code != 0 || !strings.Contains(stdout+stderr, "starts as a joiner") {
		t.Fatalf("validate with a mismatched key and administrators: exit %d\n%s%s", code, stdout, stderr)
	}
	editConfig(t, home(2), func(fc *config.FileConfig) { fc.Admins, fc.AdminThreshold = nil, 0 })
	if code, stdout, _ = cli(t, "config", "validate", "--home", home(2)); code != 1 || !strings.Contains(stdout, "but replica 2's public_key is") {
		t.Fatalf("validate with a mismatched key: exit %d\n%s", code, stdout)
	}

	// An encrypted key: refused without a passphrase, accepted with one
	// from the environment or from key_passphrase_file, and `run`'s
	// LoadHome agrees.
	keyPath := filepath.Join(home(3), "key")
	key, err := keyfile.Read(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := keyfile.WriteEncryptedParams(keyPath, key, []byte("s3cret"), cheapKDF); err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ = cli(t, "config", "validate", "--home", home(3)); code != 1 || !strings.Contains(stdout, config.PassphraseEnv) {
		t.Fatalf("validate an encrypted key without a passphrase: exit %d\n%s", code, stdout)
	}
	t.Setenv(config.PassphraseEnv, "wrong")
	if code, stdout, _ = cli(t, "config", "validate", "--home", home(3)); code != 1 || !strings.Contains(stdout, "wrong passphrase or corrupted key file") {
		t.Fatalf("validate an encrypted key with a wrong passphrase: exit %d\n%s", code, stdout)
	}
	t.Setenv(config.PassphraseEnv, "s3cret")
	if code, stdout, _ = cli(t, "config", "validate", "--home", home(3)); code != 0 || !strings.Contains(stdout, "(encrypted)") {
		t.Fatalf("validate an encrypted key with the passphrase: exit %d\n%s", code, stdout)
	}
	t.Setenv(config.PassphraseEnv, "")
	if err := os.WriteFile(filepath.Join(home(3), "passphrase"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	editConfig(t, home(3), func(fc *config.FileConfig) { fc.KeyPassphraseFile = "passphrase" })
	if code, stdout, _ = cli(t, "config", "validate", "--home", home(3)); code != 0 {
		t.Fatalf("validate with key_passphrase_file: exit %d\n%s", code, stdout)
	}
	cfg, err := node.LoadHome(home(3), nil)
	if err != nil || !cfg.Key.Equal(key) {
		t.Fatalf("LoadHome with key_passphrase_file: %v", err)
	}

	if code, _, _ := cli(t, "config", "validate"); code != 2 {
		t.Fatalf("validate without --home: exit %d, want 2", code)
	}
	if code, _, _ := cli(t, "config", "frobnicate"); code != 2 {
		t.Fatalf("unknown config subcommand: exit %d, want 2", code)
	}
}

func TestStatusWhenReplicaDown(t *testing.T) {
	dir := t.TempDir()
	writeTestnet(t, dir, 27700)
	// Nothing listens on a testnet's ports until its replicas run; point
	// the metrics address at a port that was just closed to be sure.
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	home := filepath.Join(dir, "node0")
	editConfig(t, home, func(fc *config.FileConfig) { fc.MetricsListen = addr })
	code, _, stderr := cli(t, "status", "--home", home)
	if code != 1 || !strings.Contains(stderr, "does not answer") || !strings.Contains(stderr, addr) {
		t.Fatalf("status of a stopped replica: exit %d: %s", code, stderr)
	}
	editConfig(t, home, func(fc *config.FileConfig) { fc.MetricsListen = "" })
	if code, _, stderr := cli(t, "status", "--home", home); code != 1 || !strings.Contains(stderr, "metrics_listen is not set") {
		t.Fatalf("status without metrics_listen: exit %d: %s", code, stderr)
	}
}

func TestStatusAndReadinessOnTestnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-replica libp2p cluster")
	}
	dir := startCluster(t)
	if code, _, stderr := cli(t, "client", "--dir", dir, "put", "a", "1"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	home := filepath.Join(dir, "node0")
	code, stdout, stderr := cli(t, "status", "--home", home)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"view:", "executed sequence:", "stable checkpoint:", "connected peers:", "ready:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, stdout)
		}
	}
	// The client accepted f+1 = 2 matching replies, so at least two
	// replicas executed the put: each of them reports it and is ready.
	executed := 0
	for i := range 4 {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		code, stdout, stderr := cli(t, "status", "--home", home, "--json")
		var r node.StatusReport
		if err := json.Unmarshal([]byte(stdout), &r); code != 0 || err != nil {
			t.Fatalf("status --json: exit %d, %v: %s%s", code, err, stdout, stderr)
		}
		if r.Index != uint32(i) || r.Replicas != 4 || len(r.StateDigest) != 64 {
			t.Fatalf("replica %d: status --json = %+v", i, r)
		}
		if r.ExecutedSequence < 1 {
			continue
		}
		executed++
		if !r.Ready || !r.ViewActive {
			t.Fatalf("replica %d executed but is not ready: %+v", i, r)
		}
		var fc config.FileConfig
		if err := config.ReadJSON(filepath.Join(home, config.FileName), &fc); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + fc.MetricsListen + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("replica %d: /readyz = %s after executing a request", i, resp.Status)
		}
	}
	if executed < 2 {
		t.Fatalf("only %d replicas report executing the put", executed)
	}
}

// TestConfigValidateAgreesWithRun: validate and run apply the same rules
// (config.Check): a valid Raft home passes validate, a duplicate address
// fails both, a 3-replica PBFT home fails both.
func TestConfigValidateAgreesWithRun(t *testing.T) {
	t.Setenv(config.PassphraseEnv, "")
	dir := t.TempDir()
	if code, _, stderr := cli(t, "testnet", "--protocol", "raft", "--replicas", "3", "--dir", filepath.Join(dir, "raft"), "--base-port", "27650"); code != 0 {
		t.Fatalf("testnet --protocol raft: exit %d: %s", code, stderr)
	}
	raftHome := filepath.Join(dir, "raft", "node0")
	code, stdout, stderr := cli(t, "config", "validate", "--home", raftHome)
	if code != 0 || !strings.Contains(stdout, "(raft, 3 replicas, tolerates f=1)") || stderr != "" {
		t.Fatalf("validate a Raft testnet home: exit %d\n%s%s", code, stdout, stderr)
	}
	if cfg, err := node.LoadHome(raftHome, nil); err != nil || cfg.Consensus != config.ConsensusRaft {
		t.Fatalf("LoadHome of a Raft testnet home: %v", err)
	}

	writeTestnet(t, filepath.Join(dir, "pbft"), 27660)
	home := func(i int) string { return filepath.Join(dir, "pbft", fmt.Sprintf("node%d", i)) }
	editConfig(t, home(1), func(fc *config.FileConfig) { fc.Replicas[1].Address = fc.Replicas[0].Address })
	code, stdout, _ = cli(t, "config", "validate", "--home", home(1))
	if code != 1 || !strings.Contains(stdout, "replica 1 has the same address /ip4/127.0.0.1/tcp/27660 as replica 0") {
		t.Fatalf("validate a duplicate address: exit %d\n%s", code, stdout)
	}
	// run refuses it before it starts anything (no listener, no database).
	code, _, stderr = cli(t, "run", "--home", home(1))
	if code == 0 || !strings.Contains(stderr, "same address") {
		t.Fatalf("run with a duplicate address: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(home(1), "data")); !os.IsNotExist(err) {
		t.Fatalf("run with a duplicate address created its database: %v", err)
	}

	editConfig(t, home(2), func(fc *config.FileConfig) { fc.Replicas = fc.Replicas[:3] })
	code, stdout, _ = cli(t, "config", "validate", "--home", home(2))
	if code != 1 || !strings.Contains(stdout, "3 replicas: PBFT needs at least 4") {
		t.Fatalf("validate a 3-replica PBFT home: exit %d\n%s", code, stdout)
	}
	if _, err := node.LoadHome(home(2), nil); err == nil || !strings.Contains(err.Error(), "PBFT needs at least 4") {
		t.Fatalf("LoadHome of a 3-replica PBFT home: %v", err)
	}
}

// TestOperationsDocListsEveryConfigField keeps docs/operations.md's
// config.json table in step with config.FileConfig.
func TestOperationsDocListsEveryConfigField(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var fields func(typ reflect.Type, prefix string)
	fields = func(typ reflect.Type, prefix string) {
		for f := range typ.Fields() {
			if f.Anonymous {
				fields(f.Type, prefix)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			row := "| `" + prefix + name + "` |"
			if !strings.Contains(string(doc), row) {
				t.Errorf("docs/operations.md has no table row for %s (want a line starting %q)", prefix+name, row)
			}
			if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
				fields(f.Type.Elem(), prefix+name+"[].")
			}
		}
	}
	fields(reflect.TypeFor[config.FileConfig](), "")
}
