package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/keyfile"
)

// writeHome writes the home of replica 0 of an n-replica cluster of the
// given consensus protocol (plain key, distinct addresses, metrics on),
// with edit (if not nil) applied to its config.json first.
func writeHome(t *testing.T, consensus string, n int, edit func(*FileConfig)) (string, ed25519.PrivateKey) {
	t.Helper()
	home := t.TempDir()
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyfile.Write(filepath.Join(home, DefaultKeyFile), key); err != nil {
		t.Fatal(err)
	}
	fc := FileConfig{ClusterFile: ClusterFile{ClusterID: "c", Consensus: consensus}, MetricsListen: "127.0.0.1:0"}
	for i := range n {
		pub := key.Public().(ed25519.PublicKey)
		if i > 0 {
			pub = seededPublicKey(byte(i))
		}
		fc.Replicas = append(fc.Replicas, ReplicaRecord{Index: uint32(i), PublicKey: keyfile.EncodePublicKey(pub), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 26600+i)})
	}
	if edit != nil {
		edit(&fc)
	}
	if err := WriteJSON(filepath.Join(home, FileName), fc, 0o644); err != nil {
		t.Fatal(err)
	}
	return home, key
}

// seededPublicKey is a public key that depends only on seed.
func seededPublicKey(seed byte) ed25519.PublicKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
}

// checkHome runs Check on home's config.json.
func checkHome(t *testing.T, home string) (warnings, problems []string) {
	t.Helper()
	var fc FileConfig
	if err := ReadJSON(filepath.Join(home, FileName), &fc); err != nil {
		t.Fatal(err)
	}
	return Check(home, fc)
}

// wantProblem fails unless some problem contains want.
func wantProblem(t *testing.T, problems []string, want string) {
	t.Helper()
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
		t.Errorf("no problem mentions %q: %q", want, problems)
	}
}

func TestValidateRaftHome(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		home, key := writeHome(t, ConsensusRaft, n, nil)
		if warnings, problems := checkHome(t, home); len(problems) > 0 || len(warnings) > 0 {
			t.Fatalf("a %d-replica Raft home: problems %q, warnings %q", n, problems, warnings)
		}
		h, err := Load(home, nil)
		if err != nil || h.Consensus != ConsensusRaft || !h.Key.Equal(key) {
			t.Fatalf("Load of a %d-replica Raft home: %v (consensus %q)", n, err, h.Consensus)
		}
		if want := fmt.Sprintf("(raft, %d replicas, tolerates f=%d)", n, (n-1)/2); !strings.Contains(h.Summary()[0], want) {
			t.Fatalf("summary %q lacks %q", h.Summary()[0], want)
		}
	}
	home, _ := writeHome(t, ConsensusRaft, 4, nil)
	if warnings, problems := checkHome(t, home); len(problems) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "4 replicas tolerate f=1 crash faults") {
		t.Fatalf("a 4-replica Raft home: problems %q, warnings %q", problems, warnings)
	}
	home, _ = writeHome(t, ConsensusRaft, 0, func(fc *FileConfig) { fc.RaftHeartbeatTicks, fc.RaftElectionTicks = 20, 20 })
	_, problems := checkHome(t, home)
	wantProblem(t, problems, "0 replicas: Raft needs at least 1")
	wantProblem(t, problems, "raft_heartbeat_ticks 20 is not below raft_election_ticks 20")
}

func TestValidatePBFTNeedsFourReplicas(t *testing.T) {
	for _, consensus := range []string{"", ConsensusPBFT} {
		home, _ := writeHome(t, consensus, 3, nil)
		_, problems := checkHome(t, home)
		wantProblem(t, problems, "3 replicas: PBFT needs at least 4 replicas (n = 3f+1)")
		if _, err := Load(home, nil); err == nil {
			t.Fatalf("Load accepted a 3-replica PBFT home (consensus %q)", consensus)
		}
		home, _ = writeHome(t, consensus, 4, nil)
		if warnings, problems := checkHome(t, home); len(problems) > 0 || len(warnings) > 0 {
			t.Fatalf("a 4-replica PBFT home: problems %q, warnings %q", problems, warnings)
		}
	}
	home, _ := writeHome(t, ConsensusPBFT, 5, nil)
	if warnings, problems := checkHome(t, home); len(problems) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "5 replicas tolerate f=1 faults, as 4 would") {
		t.Fatalf("a 5-replica PBFT home: problems %q, warnings %q", problems, warnings)
	}
	home, _ = writeHome(t, "paxos", 4, nil)
	_, problems := checkHome(t, home)
	wantProblem(t, problems, `protocol "paxos": want "pbft" or "raft"`)
}

// TestValidateRefusesDuplicateAddress: a duplicate address is refused by Check
// (config validate), by Load (run) and by ClusterFile.Decode (clients), for
// both consensus protocols.
func TestValidateRefusesDuplicateAddress(t *testing.T) {
	for _, consensus := range []string{ConsensusPBFT, ConsensusRaft} {
		home, _ := writeHome(t, consensus, 4, func(fc *FileConfig) {
			fc.Replicas[2].Address = "/ip4/127.0.0.1/tcp/26601"
		})
		_, problems := checkHome(t, home)
		wantProblem(t, problems, "replica 2 has the same address /ip4/127.0.0.1/tcp/26601 as replica 1")
		_, err := Load(home, nil)
		var invalid *InvalidError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "replica 2 has the same address") {
			t.Fatalf("%s: Load with a duplicate address: %v", consensus, err)
		}
		var fc FileConfig
		if err := ReadJSON(filepath.Join(home, FileName), &fc); err != nil {
			t.Fatal(err)
		}
		if _, err := fc.Decode(); err == nil || !strings.Contains(err.Error(), "same address") {
			t.Fatalf("%s: Decode with a duplicate address: %v", consensus, err)
		}
	}
}

// TestValidateReportsEveryProblem: many problems at once, all listed, and Load
// refuses the same home.
func TestValidateReportsEveryProblem(t *testing.T) {
	home, _ := writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) {
		fc.ClusterID = ""
		fc.Replicas[2].PublicKey = fc.Replicas[3].PublicKey
		fc.Replicas[3].Address = "/ip4/not-an-ip/tcp/1"
		fc.Replicas[0].Address = fc.Replicas[2].Address
		fc.Replicas[1].Index = 7
		fc.Replicas = append(fc.Replicas, ReplicaRecord{Index: 4, PublicKey: "zz", Address: ""})
		fc.ClientAllowlist = []string{"abcd"}
		fc.Listen = "not-a-multiaddr"
		fc.MetricsListen = "no-port"
		fc.TickInterval = "soon"
		fc.CheckpointInterval, fc.WindowSize = 64, 32
		fc.MaxBatchSize, fc.MaxInFlight, fc.BatchDelayTicks = -1, -2, -3
		fc.MaxPartialInFlight = 100
		fc.ClientRateLimit, fc.ClientRateBurst = -1, -1
		fc.Index = 9
	})
	if err := os.WriteFile(filepath.Join(home, DefaultDataDir), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, problems := checkHome(t, home)
	for _, want := range []string{
		"cluster_id is empty",
		"replicas[1] has index 7",
		"replica 3 has the same public_key as replica 2",
		"replica 4 public_key",
		"replica 4 has no address",
		"replica 3 address",
		"replica 2 has the same address",
		"client_allowlist[0]",
		"listen \"not-a-multiaddr\"",
		"metrics_listen",
		"tick_interval",
		"window_size 32 is smaller than checkpoint_interval 64",
		"max_batch_size -1 is negative",
		"max_in_flight -2 is negative",
		"batch_delay_ticks -3 is negative",
		"max_partial_in_flight 100 is above max_in_flight",
		"client_rate_limit -1 is negative",
		"client_rate_burst -1 is negative",
		"data_dir",
		"index 9 is outside the 5 replicas",
	} {
		wantProblem(t, problems, want)
	}
	if _, err := Load(home, nil); err == nil {
		t.Fatal("Load accepted a home with problems")
	}

	// The key does not match the replica's public key.
	home, _ = writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) {
		fc.Replicas[0].PublicKey, fc.Replicas[1].PublicKey = fc.Replicas[1].PublicKey, fc.Replicas[0].PublicKey
	})
	_, problems = checkHome(t, home)
	wantProblem(t, problems, "but replica 0's public_key is")

	// The Go runtime settings.
	for _, c := range []struct {
		gc, limit int
		want      string
	}{
		{-2, 0, "gc_percent -2"},
		{-1, 0, "gc_percent -1 needs memory_limit_mib"},
		{0, -5, "memory_limit_mib -5 is negative"},
	} {
		home, _ = writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) { fc.GCPercent, fc.MemoryLimitMiB = c.gc, c.limit })
		_, problems = checkHome(t, home)
		wantProblem(t, problems, c.want)
	}
	home, _ = writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) { fc.GCPercent, fc.MemoryLimitMiB = -1, 512 })
	if _, problems = checkHome(t, home); len(problems) > 0 {
		t.Fatalf("gc_percent -1 with a memory limit: %q", problems)
	}
	home, _ = writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) { fc.GOMAXPROCS = -1 })
	_, problems = checkHome(t, home)
	wantProblem(t, problems, "gomaxprocs -1 is negative")
}

func TestValidateWarnings(t *testing.T) {
	client := keyfile.EncodePublicKey(seededPublicKey(100))
	home, _ := writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) {
		fc.MetricsListen = ""
		fc.UnsafeNoFsync = true
		fc.KeyPassphraseFile = "pass"
		fc.ClientAllowlist = []string{client, client, fc.Replicas[1].PublicKey}
	})
	warnings, problems := checkHome(t, home)
	if len(problems) > 0 {
		t.Fatalf("problems: %q", problems)
	}
	for _, want := range []string{"metrics_listen is empty", "unsafe_no_fsync", "key_passphrase_file is set but the key file is not encrypted",
		"client_allowlist[1] repeats client_allowlist[0]", "client_allowlist[2] is replica 1's public_key"} {
		if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("no warning mentions %q: %q", want, warnings)
		}
	}
	h, err := Load(home, nil)
	if err != nil || len(h.Warnings) != len(warnings) {
		t.Fatalf("Load: %v, warnings %q", err, h.Warnings)
	}
}

func TestLoadAppliesOverridesBeforeChecking(t *testing.T) {
	home, _ := writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) { fc.MetricsListen = "no-port" })
	if _, err := Load(home, nil); err == nil {
		t.Fatal("Load accepted metrics_listen no-port")
	}
	fs := newFlagSet()
	flags := RegisterFlags(fs)
	if err := fs.Parse([]string{"--metrics-listen", "127.0.0.1:9", "--max-batch-size", "7", "--tick-interval", "5ms"}); err != nil {
		t.Fatal(err)
	}
	h, err := Load(home, flags)
	if err != nil {
		t.Fatal(err)
	}
	if h.File.MetricsListen != "127.0.0.1:9" || h.PBFT.MaxBatchSize != 7 || h.Raft.MaxBatchSize != 7 || h.TickInterval.Milliseconds() != 5 ||
		h.DataDir != filepath.Join(home, DefaultDataDir) || h.ListenAddr != "/ip4/127.0.0.1/tcp/26600" || h.Consensus != ConsensusPBFT {
		t.Fatalf("loaded %+v", h)
	}
}

func TestLoadEncryptedKey(t *testing.T) {
	home, key := writeHome(t, ConsensusPBFT, 4, nil)
	keyPath := filepath.Join(home, DefaultKeyFile)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := keyfile.WriteEncryptedParams(keyPath, key, []byte("hunter2"), keyfile.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PassphraseEnv, "")
	if _, err := Load(home, nil); err == nil || !strings.Contains(err.Error(), PassphraseEnv) || !errors.Is(err, keyfile.ErrPassphraseRequired) {
		t.Fatalf("Load without a passphrase: %v", err)
	}
	t.Setenv(PassphraseEnv, "wrong")
	if _, err := Load(home, nil); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("Load with a wrong passphrase: %v", err)
	}
	t.Setenv(PassphraseEnv, "hunter2")
	if h, err := Load(home, nil); err != nil || !h.Key.Equal(key) || !h.KeyEncrypted {
		t.Fatalf("Load with the passphrase in the environment: %v", err)
	}

	t.Setenv(PassphraseEnv, "")
	if err := os.WriteFile(filepath.Join(home, "pass"), []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var fc FileConfig
	if err := ReadJSON(filepath.Join(home, FileName), &fc); err != nil {
		t.Fatal(err)
	}
	fc.KeyPassphraseFile = "pass"
	if err := WriteJSON(filepath.Join(home, FileName), fc, 0o644); err != nil {
		t.Fatal(err)
	}
	if h, err := Load(home, nil); err != nil || !h.Key.Equal(key) {
		t.Fatalf("Load with key_passphrase_file: %v", err)
	}
}

func TestLoadClientAllowlistBadKey(t *testing.T) {
	good := keyfile.EncodePublicKey(seededPublicKey(100))
	for _, tc := range []struct{ name, key, want string }{
		{"not hex", "zz-not-hex", "decode public key"},
		{"too short", "abcd", "2 bytes, want 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home, _ := writeHome(t, ConsensusPBFT, 4, func(fc *FileConfig) { fc.ClientAllowlist = []string{good, tc.key} })
			_, err := Load(home, nil)
			if err == nil {
				t.Fatal("Load accepted a bad client_allowlist key")
			}
			if !strings.Contains(err.Error(), "client_allowlist[1]") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name client_allowlist[1] and %q", err, tc.want)
			}
		})
	}
}

// TestConsensusKeepsItsJSONKey: the consensus choice is read from and
// written to the key "protocol" existing homes use.
func TestConsensusKeepsItsJSONKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(`{"cluster_id": "c", "protocol": "raft", "replicas": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var cf ClusterFile
	if err := ReadJSON(path, &cf); err != nil || cf.Consensus != ConsensusRaft {
		t.Fatalf("read %+v: %v", cf, err)
	}
	if err := WriteJSON(path, cf, 0o644); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(path); err != nil || !strings.Contains(string(raw), `"protocol": "raft"`) {
		t.Fatalf("written: %s (%v)", raw, err)
	}
}
