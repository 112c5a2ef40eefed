package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pbftnode/pbftnode/config"
)

// cometbftMaxResponse bounds the bytes read of one JSON-RPC answer.
const cometbftMaxResponse = 1 << 20

// cometbftNode is one validator's home and loopback ports.
type cometbftNode struct {
	home    string
	id      string // node ID: hex of the first 20 bytes of SHA-256 of its ed25519 key
	p2pPort int
	rpcPort int
	rpcURL  string
	logPath string
}

// cometbftSettings is what the benchmark rewrites in node i's
// config.toml, by section ("" is the top level) and key; values are
// TOML-encoded. outstanding is the most operations the load keeps
// outstanding (Clients x Window): every broadcast_tx_commit holds an RPC
// connection and an event subscription until its block commits, so the
// RPC limits are raised above it.
func cometbftSettings(nodes []cometbftNode, i int, timeoutCommit time.Duration, outstanding int) map[string]map[string]string {
	var peers []string
	for j, n := range nodes {
		if j != i {
			peers = append(peers, fmt.Sprintf("%s@127.0.0.1:%d", n.id, n.p2pPort))
		}
	}
	limit := strconv.Itoa(max(900, outstanding+100))
	q := strconv.Quote
	return map[string]map[string]string{
		"": {"proxy_app": q("kvstore"), "moniker": q(fmt.Sprintf("node%d", i))},
		"rpc": {
			"laddr":                        q(fmt.Sprintf("tcp://127.0.0.1:%d", nodes[i].rpcPort)),
			"max_open_connections":         limit,
			"max_subscription_clients":     limit,
			"max_subscriptions_per_client": strconv.Itoa(max(5, DefaultWindow)),
			"timeout_broadcast_tx_commit":  q("30s"),
		},
		"p2p": {
			"laddr":              q(fmt.Sprintf("tcp://127.0.0.1:%d", nodes[i].p2pPort)),
			"persistent_peers":   q(strings.Join(peers, ",")),
			"addr_book_strict":   "false",
			"allow_duplicate_ip": "true",
		},
		"consensus": {"timeout_commit": q(timeoutCommit.String())},
	}
}

// rewriteTOML sets, in each [section] of a TOML file's text ("" for the
// lines before the first header), every `key = ...` line named in set to
// `key = value`. Every key must be present exactly where set says: a
// missing one is an error (the file is not the config.toml it expects).
func rewriteTOML(text string, set map[string]map[string]string) (string, error) {
	found := make(map[string]bool)
	var out strings.Builder
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]") {
			section = strings.Trim(trimmed, "[]")
		} else if key, _, ok := strings.Cut(trimmed, "="); ok && !strings.HasPrefix(trimmed, "#") {
			key = strings.TrimSpace(key)
			if v, ok := set[section][key]; ok {
				line = key + " = " + v
				found[section+"."+key] = true
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read config.toml: %w", err)
	}
	var missing []string
	for section, kv := range set {
		for key := range kv {
			if !found[section+"."+key] {
				missing = append(missing, "["+section+"] "+key)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("config.toml has no %s", strings.Join(missing, ", "))
	}
	return out.String(), nil
}

// cometbftNodeID reads a node_key.json and returns the node's ID.
func cometbftNodeID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("node key: %w", err)
	}
	var nk struct {
		PrivKey struct {
			Value string `json:"value"`
		} `json:"priv_key"`
	}
	if err := json.Unmarshal(b, &nk); err != nil {
		return "", fmt.Errorf("node key %s: %w", path, err)
	}
	priv, err := base64.StdEncoding.DecodeString(nk.PrivKey.Value)
	if err != nil || len(priv) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("node key %s: not an ed25519 private key", path)
	}
	sum := sha256.Sum256(priv[ed25519.SeedSize:])
	return hex.EncodeToString(sum[:20]), nil
}

// cometbftCluster is a started CometBFT testnet.
type cometbftCluster struct {
	cfg     Config
	version string
	nodes   []cometbftNode
	procs   []*replicaProc
	hc      *http.Client
	txs     atomic.Uint64 // makes every tx unique (the mempool cache drops repeats)
}

// startCometBFT writes a testnet of cfg.Replicas validators with
// `cometbft testnet`, rewrites each config.toml for loopback
// (cometbftSettings), starts `cometbft node` for each and waits until
// every node's /status reports a block height of at least 1.
func startCometBFT(ctx context.Context, cfg Config, binary, dir string) (peerCluster, error) {
	out, err := exec.CommandContext(ctx, binary, "testnet", "--v", strconv.Itoa(cfg.Replicas), "--o", dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("cometbft testnet: %w: %s", err, out)
	}
	version, _ := exec.Command(binary, "version").Output()
	ports, err := freeLoopbackPorts(2 * cfg.Replicas)
	if err != nil {
		return nil, err
	}
	c := &cometbftCluster{cfg: cfg, version: strings.TrimSpace(string(version))}
	for i := range cfg.Replicas {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		id, err := cometbftNodeID(filepath.Join(home, "config", "node_key.json"))
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, cometbftNode{
			home: home, id: id, p2pPort: ports[2*i], rpcPort: ports[2*i+1],
			rpcURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]), logPath: home + ".log",
		})
	}
	outstanding := cfg.Clients * cfg.Window
	for i, n := range c.nodes {
		path := filepath.Join(n.home, "config", "config.toml")
		text, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cometbft config: %w", err)
		}
		rewritten, err := rewriteTOML(string(text), cometbftSettings(c.nodes, i, cfg.CometBFTTimeoutCommit, outstanding))
		if err != nil {
			return nil, fmt.Errorf("cometbft node %d: %w", i, err)
		}
		if err := os.WriteFile(path, []byte(rewritten), 0o644); err != nil {
			return nil, fmt.Errorf("cometbft config: %w", err)
		}
	}
	c.hc = &http.Client{Transport: c.transport(cometbftConnsPerNode(cfg.Clients, cfg.Window, len(c.nodes)))}
	for i, n := range c.nodes {
		p, err := startProcess(binary, []string{"node", "--home", n.home}, n.logPath, config.CPUShare(len(c.nodes)))
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("cometbft node %d: %w", i, err)
		}
		c.procs = append(c.procs, p)
	}
	var logs []string
	for _, n := range c.nodes {
		logs = append(logs, n.logPath)
	}
	if err := waitMembers(ctx, c.procs, logs, peerStartTimeout, c.allCommitted); err != nil {
		c.stop()
		return nil, fmt.Errorf("cometbft: %w", err)
	}
	return c, nil
}

// cometbftConnsPerNode bounds the HTTP connections to each of n nodes:
// logical client i talks to node i mod n, so a node serves at most
// ceil(clients/n) clients, and each of their window outstanding
// broadcast_tx_commit calls holds one connection.
func cometbftConnsPerNode(clients, window, n int) int {
	return max(1, (clients+n-1)/n*window)
}

// transport is the one HTTP transport every runner shares, bounded at
// per connections to each node.
func (c *cometbftCluster) transport(per int) *http.Transport {
	return &http.Transport{
		MaxConnsPerHost: per, MaxIdleConnsPerHost: per, MaxIdleConns: per * len(c.nodes),
		IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 60 * time.Second,
	}
}

// allCommitted reports nil once every node's /status says its latest
// block height is at least 1.
func (c *cometbftCluster) allCommitted(ctx context.Context) error {
	for i, n := range c.nodes {
		var st struct {
			Result struct {
				SyncInfo struct {
					Height string `json:"latest_block_height"`
				} `json:"sync_info"`
			} `json:"result"`
		}
		if err := getJSON(ctx, c.hc, n.rpcURL+"/status", &st); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		if h, _ := strconv.ParseInt(st.Result.SyncInfo.Height, 10, 64); h < 1 {
			return fmt.Errorf("node %d: height %q", i, st.Result.SyncInfo.Height)
		}
	}
	return nil
}

func (c *cometbftCluster) runners(n, _ int) ([]opRunner, func(), error) {
	out := make([]opRunner, n)
	for i := range out {
		out[i] = &cometbftRunner{c: c, url: c.nodes[i%len(c.nodes)].rpcURL}
	}
	return out, c.hc.CloseIdleConnections, nil
}

func (c *cometbftCluster) processes() []*replicaProc { return c.procs }

func (c *cometbftCluster) describe(res *Result) {
	res.PeerVersion = c.version
	res.PeerConnections = cometbftConnsPerNode(res.Clients, res.Window, len(c.nodes)) * len(c.nodes)
	res.CometBFTTimeoutCommitMs = ms(c.cfg.CometBFTTimeoutCommit)
	res.ClientRetransmitMs = 0
}

func (c *cometbftCluster) stop() { stopProcesses(c.procs, peerStopGrace) }

// cometbftRunner runs the workload's operations on one validator: a put
// is one tx "key=value-N" (N unique) sent by broadcast_tx_commit, which
// answers once the tx is in a committed block; a get is abci_query of
// the key on that validator's committed state.
type cometbftRunner struct {
	c   *cometbftCluster
	url string
}

func (r *cometbftRunner) Invoke(ctx context.Context, op []byte) ([]byte, error) {
	o, err := decodeKVOp(op)
	if err != nil {
		return nil, err
	}
	if o.get {
		return r.query(ctx, o.key)
	}
	tx := make([]byte, 0, len(o.key)+len(o.value)+18)
	tx = append(append(append(tx, o.key...), '='), o.value...)
	tx = strconv.AppendUint(append(tx, '-'), r.c.txs.Add(1), 16)
	var res struct {
		CheckTx  struct{ Code uint32 } `json:"check_tx"`
		TxResult struct{ Code uint32 } `json:"tx_result"`
		Height   string                `json:"height"`
	}
	if err := r.call(ctx, "broadcast_tx_commit", map[string]any{"tx": tx}, &res); err != nil {
		return nil, err
	}
	if res.CheckTx.Code != 0 || res.TxResult.Code != 0 || res.Height == "" || res.Height == "0" {
		return nil, fmt.Errorf("cometbft: tx not committed: check_tx code %d, tx_result code %d, height %q", res.CheckTx.Code, res.TxResult.Code, res.Height)
	}
	return executedResult, nil
}

func (r *cometbftRunner) Read(ctx context.Context, op []byte) ([]byte, error) {
	return r.Invoke(ctx, op)
}

// query runs abci_query of key (absent keys answer code 0 too).
func (r *cometbftRunner) query(ctx context.Context, key []byte) ([]byte, error) {
	var res struct {
		Response struct{ Code uint32 } `json:"response"`
	}
	if err := r.call(ctx, "abci_query", map[string]any{"path": "", "data": hex.EncodeToString(key)}, &res); err != nil {
		return nil, err
	}
	if res.Response.Code != 0 {
		return nil, fmt.Errorf("cometbft: abci_query code %d", res.Response.Code)
	}
	return executedResult, nil
}

// call posts one JSON-RPC request and decodes its result into v; a
// JSON-RPC error is an error.
func (r *cometbftRunner) call(ctx context.Context, method string, params map[string]any, v any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("cometbft %s: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cometbft %s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cometbft %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, cometbftMaxResponse))
	if err != nil {
		return fmt.Errorf("cometbft %s: %w", method, err)
	}
	var envelope struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return fmt.Errorf("cometbft %s: %s: %w", method, resp.Status, err)
	}
	if envelope.Error != nil {
		return fmt.Errorf("cometbft %s: %s: %s", method, envelope.Error.Message, envelope.Error.Data)
	}
	if len(envelope.Result) == 0 {
		return errors.New("cometbft " + method + ": no result")
	}
	if err := json.Unmarshal(envelope.Result, v); err != nil {
		return fmt.Errorf("cometbft %s: %w", method, err)
	}
	return nil
}
