package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/execution"
)

func TestPeerConfigDefaultsAndLabels(t *testing.T) {
	for _, tc := range []struct {
		peer      string
		replicas  int
		f         int
		label     string
		clients   int
		window    int
		wantConns int
	}{
		{PeerEtcd, 3, 1, "etcd n=3 c=64x1", 64, 1, 4},
		{PeerEtcd, 3, 1, "etcd n=3 c=1x1", 1, 0, 1},
		{PeerCometBFT, 4, 1, "cometbft n=4 commit=10ms c=64x1", 64, 1, 0},
	} {
		c, err := Config{Binary: "/bin/true", Protocol: "pbft", Peer: tc.peer, Clients: tc.clients, Window: tc.window}.withDefaults()
		if err != nil {
			t.Fatalf("%s: %v", tc.peer, err)
		}
		if c.Protocol != tc.peer || c.Replicas != tc.replicas || c.faultTolerance() != tc.f || c.Label != tc.label {
			t.Errorf("%s: protocol %q n=%d f=%d label %q; want %q n=%d f=%d label %q",
				tc.peer, c.Protocol, c.Replicas, c.faultTolerance(), c.Label, tc.peer, tc.replicas, tc.f, tc.label)
		}
		res := header(c)
		if tc.peer == PeerEtcd {
			(&etcdCluster{version: "3.4.23"}).describe(&res)
		}
		var buf bytes.Buffer
		if err := WriteJSON(&buf, []Result{res}); err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(buf.Bytes(), &obj); err != nil {
			t.Fatal(err)
		}
		if obj["protocol"] != tc.peer || obj["replicas"] != float64(tc.replicas) || obj["f"] != float64(tc.f) || obj["label"] != tc.label {
			t.Errorf("%s JSON: protocol %v replicas %v f %v label %v", tc.peer, obj["protocol"], obj["replicas"], obj["f"], obj["label"])
		}
		if got, _ := obj["peer_connections"].(float64); int(got) != tc.wantConns {
			t.Errorf("%s with %d clients: peer_connections %v, want %d", tc.peer, tc.clients, obj["peer_connections"], tc.wantConns)
		}
		buf.Reset()
		if err := WriteTable(&buf, []Result{res}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "\n  "+tc.label+" ") && !strings.Contains(buf.String(), "\n"+tc.label+" ") {
			t.Errorf("%s: table has no row labelled %q:\n%s", tc.peer, tc.label, buf.String())
		}
	}
	c, err := Config{Binary: "/bin/true", Peer: PeerCometBFT, CometBFTTimeoutCommit: time.Second}.withDefaults()
	if err != nil || !strings.Contains(c.Label, "commit=1s") {
		t.Errorf("cometbft with timeout_commit 1s: label %q (%v), want it to say commit=1s", c.Label, err)
	}
}

func TestPeerConfigRejects(t *testing.T) {
	for name, c := range map[string]Config{
		"unknown peer":     {Peer: "zookeeper"},
		"peer ledger":      {Peer: PeerEtcd, App: AppLedger},
		"peer scenario":    {Peer: PeerEtcd, Scenario: ScenarioCrashLeader},
		"peer receipts":    {Peer: PeerEtcd, NoReceipts: true},
		"peer commits":     {Peer: PeerEtcd, CheckDirectCommits: true},
		"cometbft nofsync": {Peer: PeerCometBFT, NoFsync: true},
		"peer window 65":   {Peer: PeerEtcd, Window: 65},
		"peer payload":     {Peer: PeerCometBFT, Payload: 100},
	} {
		c.Binary = "/bin/true"
		if _, err := c.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", name, err)
		}
	}
}

func TestEtcdArgs(t *testing.T) {
	members := []etcdMember{
		{name: "m0", clientPort: 4001, peerPort: 5001, dataDir: "/d/m0.etcd"},
		{name: "m1", clientPort: 4002, peerPort: 5002, dataDir: "/d/m1.etcd"},
		{name: "m2", clientPort: 4003, peerPort: 5003, dataDir: "/d/m2.etcd"},
	}
	args := etcdArgs(members, 1, "tok", false)
	flag := func(args []string, name string) string {
		i := slices.Index(args, name)
		if i < 0 || i+1 >= len(args) {
			return ""
		}
		return args[i+1]
	}
	for name, want := range map[string]string{
		"--name":                        "m1",
		"--data-dir":                    "/d/m1.etcd",
		"--listen-client-urls":          "http://127.0.0.1:4002",
		"--advertise-client-urls":       "http://127.0.0.1:4002",
		"--listen-peer-urls":            "http://127.0.0.1:5002",
		"--initial-advertise-peer-urls": "http://127.0.0.1:5002",
		"--initial-cluster":             "m0=http://127.0.0.1:5001,m1=http://127.0.0.1:5002,m2=http://127.0.0.1:5003",
		"--initial-cluster-token":       "tok",
		"--initial-cluster-state":       "new",
	} {
		if got := flag(args, name); got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
	if slices.Contains(args, "--unsafe-no-fsync") {
		t.Error("fsync is off without noFsync")
	}
	if !slices.Contains(etcdArgs(members, 0, "tok", true), "--unsafe-no-fsync") {
		t.Error("noFsync does not pass --unsafe-no-fsync")
	}
}

// cometbftConfigSample is the shape of CometBFT v0.38's config.toml: the
// same key (laddr) in two sections, comments that mention keys.
const cometbftConfigSample = `# top
proxy_app = "tcp://127.0.0.1:26658"
moniker = "x"
[rpc]
# laddr = "commented out"
laddr = "tcp://127.0.0.1:26657"
max_open_connections = 900
max_subscription_clients = 100
max_subscriptions_per_client = 5
timeout_broadcast_tx_commit = "10s"
[p2p]
laddr = "tcp://0.0.0.0:26656"
persistent_peers = "a@node0:26656,b@node1:26656"
addr_book_strict = true
allow_duplicate_ip = false
[consensus]
timeout_commit = "1s"
`

func TestRewriteCometBFTConfig(t *testing.T) {
	nodes := []cometbftNode{{id: "aa", p2pPort: 1001, rpcPort: 2001}, {id: "bb", p2pPort: 1002, rpcPort: 2002}, {id: "cc", p2pPort: 1003, rpcPort: 2003}}
	out, err := rewriteTOML(cometbftConfigSample, cometbftSettings(nodes, 1, 10*time.Millisecond, 1024))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"proxy_app = \"kvstore\"\n",
		"[rpc]\n# laddr = \"commented out\"\nladdr = \"tcp://127.0.0.1:2002\"\n",
		"max_open_connections = 1124\n", "max_subscription_clients = 1124\n",
		"timeout_broadcast_tx_commit = \"30s\"\n",
		"[p2p]\nladdr = \"tcp://127.0.0.1:1002\"\n",
		"persistent_peers = \"aa@127.0.0.1:1001,cc@127.0.0.1:1003\"\n",
		"addr_book_strict = false\n", "allow_duplicate_ip = true\n",
		"timeout_commit = \"10ms\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rewritten config lacks %q:\n%s", want, out)
		}
	}
	// A light load keeps CometBFT's own limits.
	light, err := rewriteTOML(cometbftConfigSample, cometbftSettings(nodes, 0, time.Second, 1))
	if err != nil || !strings.Contains(light, "max_open_connections = 900\n") || !strings.Contains(light, "timeout_commit = \"1s\"\n") {
		t.Errorf("light load: %v\n%s", err, light)
	}
	// A config.toml without a key the benchmark sets is refused.
	if _, err := rewriteTOML(strings.Replace(cometbftConfigSample, "allow_duplicate_ip = false\n", "", 1), cometbftSettings(nodes, 0, time.Second, 1)); err == nil || !strings.Contains(err.Error(), "allow_duplicate_ip") {
		t.Errorf("missing key: error %v, want it named", err)
	}
}

func TestCometBFTNodeID(t *testing.T) {
	// A node key `cometbft testnet` wrote, and the ID it put in
	// persistent_peers for it.
	path := filepath.Join(t.TempDir(), "node_key.json")
	key := `{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"exJY9lzMxcZxARKZwCXrpiu9g8YnSq68yXG/jO1S/YyKcUlOjHG3MyAqlbntpbtarVu7rHmS0J3d84o7xdYFzA=="}}`
	if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := cometbftNodeID(path)
	if err != nil || id != "d7cf9ed6c03a147aa5098ec8ae508de6dcd58d58" {
		t.Errorf("node ID %q (%v), want d7cf9ed6c03a147aa5098ec8ae508de6dcd58d58", id, err)
	}
}

func TestDecodeKVOp(t *testing.T) {
	put, err := decodeKVOp(execution.EncodePut([]byte("k1"), []byte("v1")))
	if err != nil || put.get || string(put.key) != "k1" || string(put.value) != "v1" {
		t.Errorf("put: %+v %v", put, err)
	}
	get, err := decodeKVOp(execution.EncodeGet([]byte("k2")))
	if err != nil || !get.get || string(get.key) != "k2" {
		t.Errorf("get: %+v %v", get, err)
	}
	if _, err := decodeKVOp(execution.EncodeDelete([]byte("k3"))); err == nil {
		t.Error("a delete decodes as a peer operation")
	}
	// What a runner returns for an executed operation counts as executed.
	if !newKVWorkload(Config{Payload: 16, Keys: 10}).executed(executedResult) {
		t.Error("the workload does not count a peer's executed result")
	}
}

func TestComparePeersSkippedWhenMissing(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	t.Setenv("GOPATH", empty)
	reasons := make(map[string]error)
	o := CompareOptions{OnPeerSkipped: func(peer string, err error) { reasons[peer] = err }}.withDefaults().availablePeers()
	if len(o.Peers) != 0 {
		t.Errorf("peers %v found on an empty PATH", o.Peers)
	}
	for peer, install := range map[string]string{PeerEtcd: "apt-get install etcd-server", PeerCometBFT: "go install github.com/cometbft/cometbft/cmd/cometbft@v0.38"} {
		err := reasons[peer]
		if !errors.Is(err, ErrPeerMissing) || !strings.Contains(err.Error(), install) {
			t.Errorf("%s skipped with %v, want ErrPeerMissing naming %q", peer, err, install)
		}
	}
	for _, r := range o.plan() {
		if r.cfg.Peer != "" {
			t.Errorf("the plan runs missing peer %s", r.cfg.Peer)
		}
	}
}

// A peer that never serves is an error after the deadline carrying each
// member's log tail; one whose process exits is an error at once.
func TestWaitMembersReportsLogTails(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "m0.log")
	p, err := startProcess("/bin/sh", []string{"-c", "echo member says it cannot bind; sleep 30"}, logPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stopProcesses([]*replicaProc{p}, time.Second)
	never := func(context.Context) error { return errors.New("connection refused") }
	// The member writes its line before the deadline passes.
	err = waitMembers(context.Background(), []*replicaProc{p}, []string{logPath}, 2*time.Second, never)
	if err == nil || !strings.Contains(err.Error(), "not serving after") || !strings.Contains(err.Error(), "member says it cannot bind") {
		t.Errorf("never ready: %v; want the deadline and the member's log tail", err)
	}

	exitLog := filepath.Join(dir, "m1.log")
	q, err := startProcess("/bin/sh", []string{"-c", "echo address already in use; exit 3"}, exitLog, 0)
	if err != nil {
		t.Fatal(err)
	}
	<-q.exited
	err = waitMembers(context.Background(), []*replicaProc{q}, []string{exitLog}, time.Minute, never)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("exited member: %v; want its exit and log tail", err)
	}
}

func TestCometBFTConnsPerNode(t *testing.T) {
	for _, tc := range []struct{ clients, window, n, want int }{
		{64, 1, 4, 16}, {1, 1, 4, 1}, {16, 64, 4, 256},
		// Clients 0 and 4 both talk to node 0: it needs two windows.
		{6, 64, 4, 128},
	} {
		if got := cometbftConnsPerNode(tc.clients, tc.window, tc.n); got != tc.want {
			t.Errorf("%d clients x %d over %d nodes: %d connections per node, want %d", tc.clients, tc.window, tc.n, got, tc.want)
		}
	}
}
