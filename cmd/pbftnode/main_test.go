package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/internal/proctest"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/launch"
)

// cli runs the command line in-process and returns its exit status and
// output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = mainWithArgs(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// freeBasePort finds P such that P..P+n-1 and P+100..P+100+n-1 are free.
// Another process can still take them before the replicas listen; the
// caller retries once.
func freeBasePort(t *testing.T, rng *rand.Rand, n int) int {
	t.Helper()
	for range 50 {
		base := 30000 + rng.IntN(10000-100-n)
		var ports []int
		for i := range n {
			ports = append(ports, base+i, base+100+i)
		}
		if proctest.PortsFree(ports...) {
			return base
		}
	}
	t.Fatal("no free block of ports in 30000-40000")
	return 0
}

func writeTestnet(t *testing.T, dir string, basePort int, extra ...string) {
	t.Helper()
	args := append([]string{"testnet", "--replicas", "4", "--dir", dir, "--base-port", strconv.Itoa(basePort)}, extra...)
	code, stdout, stderr := cli(t, args...)
	if code != 0 {
		t.Fatalf("testnet: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote a 4-replica pbft testnet") {
		t.Fatalf("testnet output: %q", stdout)
	}
}

// startReplicas starts the testnet's replicas in this process (the run
// command blocks on signals, so this uses the library like run does).
func startReplicas(dir string) ([]node.Runner, error) {
	var nodes []node.Runner
	for i := range 4 {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		_, cfg, err := launch.LoadReplica(home, nil, nil)
		if err != nil {
			return nodes, err
		}
		if cfg.Sync {
			return nodes, fmt.Errorf("%s: --unsafe-no-fsync was not carried into the configuration", home)
		}
		n, err := launch.Start(cfg, nil)
		if err != nil {
			return nodes, fmt.Errorf("start replica %d: %w", i, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// startCluster writes a testnet and starts it, retrying once with other
// ports if a replica could not listen.
func startCluster(t *testing.T) string { return startClusterWith(t) }

// startClusterWith is startCluster with more testnet flags.
func startClusterWith(t *testing.T, testnetFlags ...string) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x9e3779b97f4a7c15))
	var lastErr error
	for attempt := range 2 {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("testnet%d", attempt))
		writeTestnet(t, dir, freeBasePort(t, rng, 4), append([]string{"--unsafe-no-fsync"}, testnetFlags...)...)
		nodes, err := startReplicas(dir)
		t.Cleanup(func() {
			for _, n := range nodes {
				if err := n.Close(); err != nil {
					t.Errorf("close replica: %v", err)
				}
			}
		})
		if err == nil {
			return dir
		}
		for _, n := range nodes {
			_ = n.Close()
		}
		lastErr = err
		t.Logf("attempt %d: %v", attempt, err)
	}
	t.Fatalf("could not start the testnet: %v", lastErr)
	return ""
}

func TestClientAgainstTestnetCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-replica libp2p cluster")
	}
	dir := startCluster(t)

	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "a", "1"}, "ok\n"},
		{[]string{"get", "a"}, "1\n"},
		{[]string{"cas", "a", "1", "2"}, "swapped\n"},
		{[]string{"cas", "a", "1", "3"}, "not swapped (current value 2)\n"},
		{[]string{"get", "a"}, "2\n"},
		{[]string{"delete", "a"}, "ok\n"},
		{[]string{"get", "a"}, "(not found)\n"},
		{[]string{"cas", "a", "1", "3"}, "not swapped (key absent)\n"},
		{[]string{"--old-absent", "cas", "b", "new"}, "swapped\n"},
		{[]string{"--old-absent", "cas", "b", "newer"}, "not swapped (current value new)\n"},
		{[]string{"get", "b"}, "new\n"},
	} {
		args := append([]string{"client", "--dir", dir}, step.args...)
		code, stdout, stderr := cli(t, args...)
		if code != 0 || stdout != step.want {
			t.Fatalf("%s: exit %d, stdout %q (want %q), stderr %q", strings.Join(step.args, " "), code, stdout, step.want, stderr)
		}
	}

	for _, step := range []struct {
		args []string
		want map[string]any
	}{
		{[]string{"get", "a"}, map[string]any{"operation": "get", "outcome": "executed", "ok": true, "found": false}},
		{[]string{"put", "a", "x y"}, map[string]any{"operation": "put", "outcome": "executed", "ok": true}},
		{[]string{"get", "a"}, map[string]any{"operation": "get", "outcome": "executed", "ok": true, "found": true, "value": "x y"}},
		{[]string{"cas", "a", "zzz", "w"}, map[string]any{"operation": "cas", "outcome": "executed", "ok": true, "swapped": false, "value": "x y"}},
		{[]string{"cas", "a", "x y", "w"}, map[string]any{"operation": "cas", "outcome": "executed", "ok": true, "swapped": true}},
		{[]string{"delete", "a"}, map[string]any{"operation": "delete", "outcome": "executed", "ok": true}},
	} {
		args := append([]string{"client", "--dir", dir, "--json"}, step.args...)
		code, stdout, stderr := cli(t, args...)
		if code != 0 {
			t.Fatalf("--json %s: exit %d, stderr %q", strings.Join(step.args, " "), code, stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("--json %s: output %q is not JSON: %v", strings.Join(step.args, " "), stdout, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Fatalf("--json %s: got %v, want %v", strings.Join(step.args, " "), got, step.want)
		}
	}
}

func TestClientUsageErrors(t *testing.T) {
	dir := t.TempDir()
	writeTestnet(t, dir, 31000) // never started: usage errors come first
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"client", "--dir", dir, "frob", "a"}, `unknown operation "frob"`},
		{[]string{"client", "--dir", dir, "get"}, "get takes 1 arguments, got 0"},
		{[]string{"client", "--dir", dir, "put", "a"}, "put takes 2 arguments, got 1"},
		{[]string{"client", "--dir", dir, "cas", "a", "1"}, "cas takes 3 arguments, got 2"},
		{[]string{"client", "--dir", dir, "--old-absent", "cas", "a", "1", "2"}, "cas takes 2 arguments, got 3"},
		{[]string{"client", "--dir", dir}, "missing operation"},
		{[]string{"client", "get", "a"}, "--dir is required"},
		{[]string{"client", "--dir", dir, "--no-such-flag", "get", "a"}, "no-such-flag"},
		{[]string{"testnet", "--replicas", "4"}, "--dir is required"},
		{[]string{"testnet", "--dir", dir, "--replicas", "3"}, "at least 4 replicas"},
		{[]string{"testnet", "--dir", dir, "--protocol", "paxos"}, `--protocol "paxos": want pbft or raft`},
		{[]string{"testnet", "--dir", dir, "--base-port", "65500"}, "base port 65500 leaves no room"},
		{[]string{"run"}, "--home is required"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{nil, "usage: pbftnode COMMAND"},
	} {
		code, stdout, stderr := cli(t, tc.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", tc.args, code, stderr)
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: stderr %q does not contain %q", tc.args, stderr, tc.want)
		}
		if stdout != "" {
			t.Errorf("%q: wrote %q to stdout on a usage error", tc.args, stdout)
		}
	}
}

// TestClientWithoutClientJSONFails: a directory without client.json is a
// configuration error (exit 2), reported before anything is sent.
func TestClientWithoutClientJSONFails(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := cli(t, "client", "--dir", dir, "--json", "get", "a")
	if code != 2 {
		t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr)
	}
	if !strings.Contains(stderr, "client.json") {
		t.Fatalf("stderr %q does not name client.json", stderr)
	}
	if stdout != "" {
		t.Fatalf("stdout %q on failure", stdout)
	}
}

func TestTestnetKeyFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	writeTestnet(t, dir, 31000)
	keys := []string{filepath.Join(dir, "client.key")}
	for i := range 4 {
		keys = append(keys, filepath.Join(dir, fmt.Sprintf("node%d", i), "key"))
	}
	for _, k := range keys {
		info, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", k, perm)
		}
	}

	home := filepath.Join(dir, "node0")
	if _, err := node.LoadHome(home, nil); err != nil {
		t.Fatalf("LoadHome of a fresh testnet: %v", err)
	}
	keyFile := filepath.Join(home, "key")
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := node.LoadHome(home, nil)
	if err == nil {
		t.Fatal("LoadHome accepted a key file with mode 0644")
	}
	if !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("error %q does not name the key file %s", err, keyFile)
	}

	// The client refuses a readable key too, naming it (exit 2: a
	// configuration error).
	if err := os.Chmod(filepath.Join(dir, "client.key"), 0o640); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, "client", "--dir", dir, "get", "a")
	if code != 2 || !strings.Contains(stderr, filepath.Join(dir, "client.key")) {
		t.Fatalf("client with a 0640 key: exit %d, stderr %q", code, stderr)
	}
}

func TestTestnetRewritesDirectory(t *testing.T) {
	dir := t.TempDir()
	writeTestnet(t, dir, 31000)
	first, err := os.ReadFile(filepath.Join(dir, "node1", "key"))
	if err != nil {
		t.Fatal(err)
	}
	writeTestnet(t, dir, 31000)
	second, err := os.ReadFile(filepath.Join(dir, "node1", "key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, second) {
		t.Fatal("a second testnet into the same directory kept the old key")
	}
	if _, err := node.LoadHome(filepath.Join(dir, "node1"), nil); err != nil {
		t.Fatalf("LoadHome after rewriting: %v", err)
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"client", "testnet", "run"} {
		code, _, stderr := cli(t, cmd, "-h")
		if code != 0 {
			t.Errorf("%s -h: exit %d, want 0", cmd, code)
		}
		if !strings.Contains(stderr, "-dir") && !strings.Contains(stderr, "-home") {
			t.Errorf("%s -h printed no flags: %q", cmd, stderr)
		}
	}
	for _, c := range commands() {
		if code, _, stderr := cli(t, c.name, "--help"); code != 0 {
			t.Errorf("%s --help: exit %d, want 0 (stderr %q)", c.name, code, stderr)
		}
	}
	for _, help := range []string{"--help", "-h", "help"} {
		code, stdout, _ := cli(t, help)
		if code != 0 || !strings.Contains(stdout, "usage: pbftnode COMMAND") {
			t.Errorf("pbftnode %s: exit %d, stdout %q; want 0 and the usage on stdout", help, code, stdout)
		}
	}
	// The client's help documents its exit statuses.
	_, _, stderr := cli(t, "client", "--help")
	for _, want := range []string{"exit status", "0  executed", "2  usage", "3  outcome unknown", "4  refused"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("client --help does not say %q:\n%s", want, stderr)
		}
	}
}
