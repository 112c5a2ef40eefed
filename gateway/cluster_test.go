package gateway_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/gateway"
	"github.com/pbftnode/pbftnode/node/launch"
	"github.com/pbftnode/pbftnode/receipt"
)

// startCluster writes a 4-replica PBFT testnet of application (its
// client key a ledger issuer) and runs it in this process.
func startCluster(t *testing.T, application string) string {
	return startClusterOf(t, config.ConsensusPBFT, 4, application)
}

// startClusterOf is startCluster of n replicas of consensus.
func startClusterOf(t *testing.T, consensus string, n int, application string) string {
	t.Helper()
	dir := t.TempDir()
	base, err := pbftnode.FreeBasePort("127.0.0.1", n)
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.WriteTestnet(config.Testnet{Dir: dir, Replicas: n, Consensus: consensus, BasePort: base, UnsafeNoFsync: true, Application: application, ClientIsIssuer: application == config.ApplicationLedger})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		_, cfg, err := launch.LoadReplica(pbftnode.TestnetHome(dir, i), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := launch.Start(cfg, nil)
		if err != nil {
			t.Fatalf("start replica %d: %v", i, err)
		}
		t.Cleanup(func() { _ = r.Close() })
	}
	return dir
}

// serveGateway dials the cluster of dir and serves a gateway for it over
// real HTTP.
func serveGateway(t *testing.T, dir, application string) (*httptest.Server, []byte) {
	t.Helper()
	c, err := pbftnode.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	account := c.ID()[:ed25519.PublicKeySize]
	var cf config.ClientFile
	if err := config.ReadJSON(filepath.Join(dir, "client.json"), &cf); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{Cluster: c, Application: application, Account: account, NoReceipts: cf.Consensus == config.ConsensusRaft})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv, account
}

// answer is what the tests read of an answer.
type answer struct {
	Outcome  string          `json:"outcome"`
	OK       bool            `json:"ok"`
	Found    *bool           `json:"found"`
	Swapped  *bool           `json:"swapped"`
	Value    *string         `json:"value"`
	Balance  *uint64         `json:"balance"`
	History  []any           `json:"history"`
	Error    string          `json:"error"`
	ExitCode int             `json:"exit_code"`
	Receipt  json.RawMessage `json:"receipt"`
	// ReceiptError says why an executed operation has no receipt.
	ReceiptError string `json:"receipt_error"`
}

func call(t *testing.T, method, url, body string) (int, answer) {
	t.Helper()
	defer func(start time.Time) { t.Logf("%s %s: %v", method, url, time.Since(start)) }(time.Now())
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, a
}

// checkReceipt fails unless a carries a receipt that verifies against
// the cluster of dir (its client.json names the replicas and their keys).
func checkReceipt(t *testing.T, dir, what string, a answer) {
	t.Helper()
	if len(a.Receipt) == 0 {
		t.Fatalf("%s: no receipt: %+v", what, a)
	}
	var cf config.ClientFile
	if err := config.ReadJSON(filepath.Join(dir, "client.json"), &cf); err != nil {
		t.Fatal(err)
	}
	var r receipt.Receipt
	if err := json.Unmarshal(a.Receipt, &r); err != nil {
		t.Fatalf("%s: receipt: %v", what, err)
	}
	if err := receipt.Verify(&r, cf.ClusterFile); err != nil {
		t.Fatalf("%s: the receipt does not verify: %v", what, err)
	}
}

func TestKeyValueRoundTripsOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-replica cluster")
	}
	dir := startCluster(t, "")
	srv, _ := serveGateway(t, dir, config.ApplicationKV)
	kv := srv.URL + "/v1/kv/"

	if s, a := call(t, http.MethodPut, kv+"greeting", "hello"); s != 200 || !a.OK {
		t.Fatalf("put: %d %+v", s, a)
	} else {
		checkReceipt(t, dir, "put", a)
	}
	if s, a := call(t, http.MethodGet, kv+"greeting", ""); s != 200 || a.Found == nil || !*a.Found || *a.Value != "hello" {
		t.Fatalf("get: %d %+v", s, a)
	}
	if s, a := call(t, http.MethodGet, kv+"greeting?receipt=true", ""); s != 200 || *a.Value != "hello" {
		t.Fatalf("get with receipt: %d %+v", s, a)
	} else {
		checkReceipt(t, dir, "get?receipt=true", a)
	}
	if s, a := call(t, http.MethodPost, kv+"greeting/cas", `{"old":"nope","new":"x"}`); s != 200 || *a.Swapped || *a.Value != "hello" {
		t.Fatalf("cas that must not swap: %d %+v", s, a)
	}
	if s, a := call(t, http.MethodPost, kv+"greeting/cas", `{"old":"hello","new":"bonjour"}`); s != 200 || !*a.Swapped {
		t.Fatalf("cas: %d %+v", s, a)
	} else {
		checkReceipt(t, dir, "cas", a)
	}
	if s, a := call(t, http.MethodGet, kv+"greeting", ""); s != 200 || *a.Value != "bonjour" {
		t.Fatalf("get after cas: %d %+v", s, a)
	}
	if s, a := call(t, http.MethodDelete, kv+"greeting", ""); s != 200 || !a.OK {
		t.Fatalf("delete: %d %+v", s, a)
	} else {
		checkReceipt(t, dir, "delete", a)
	}
	if s, a := call(t, http.MethodGet, kv+"greeting", ""); s != 200 || a.Found == nil || *a.Found || a.Value != nil {
		t.Fatalf("get after delete: %d %+v", s, a)
	}
	if s, a := call(t, http.MethodPost, kv+"fresh/cas", `{"new":"first"}`); s != 200 || !*a.Swapped {
		t.Fatalf("cas of an absent key: %d %+v", s, a)
	}
}

// A Raft cluster signs no receipts: the gateway orders its writes
// without one.
func TestKeyValueOverHTTPOnRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-replica cluster")
	}
	dir := startClusterOf(t, config.ConsensusRaft, 3, "")
	srv, _ := serveGateway(t, dir, config.ApplicationKV)
	kv := srv.URL + "/v1/kv/"
	// Not a write that waited for receipts until the call timeout.
	if s, a := call(t, http.MethodPut, kv+"r", "raft"); s != 200 || !a.OK || len(a.Receipt) != 0 || a.ReceiptError != "" {
		t.Fatalf("put: %d %+v", s, a)
	}
	for _, q := range []string{"", "?receipt=true"} {
		if s, a := call(t, http.MethodGet, kv+"r"+q, ""); s != 200 || a.Value == nil || *a.Value != "raft" {
			t.Fatalf("get%s: %d %+v", q, s, a)
		}
	}
	if s, a := call(t, http.MethodDelete, kv+"r", ""); s != 200 || !a.OK {
		t.Fatalf("delete: %d %+v", s, a)
	}
}

func TestLedgerOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 4-replica cluster")
	}
	dir := startCluster(t, config.ApplicationLedger)
	srv, account := serveGateway(t, dir, config.ApplicationLedger)
	me := hex.EncodeToString(account)
	other := strings.Repeat("ab", ed25519.PublicKeySize)
	if s, a := call(t, http.MethodPost, srv.URL+"/v1/ledger/mint", `{"account":"`+me+`","amount":100}`); s != 200 || *a.Balance != 100 {
		t.Fatalf("mint: %d %+v", s, a)
	} else {
		checkReceipt(t, dir, "mint", a)
	}
	if s, a := call(t, http.MethodPost, srv.URL+"/v1/ledger/transfer", `{"to":"`+other+`","amount":30}`); s != 200 || *a.Balance != 70 {
		t.Fatalf("transfer: %d %+v", s, a)
	}
	if s, a := call(t, http.MethodPost, srv.URL+"/v1/ledger/transfer", `{"to":"`+other+`","amount":1000}`); s != http.StatusConflict || a.Outcome != "refused" || a.ExitCode != 4 || !strings.Contains(a.Error, "insufficient funds") {
		t.Fatalf("overdraft: %d %+v", s, a)
	}
	if s, a := call(t, http.MethodGet, srv.URL+"/v1/ledger/accounts/"+other+"/balance", ""); s != 200 || *a.Balance != 30 {
		t.Fatalf("balance: %d %+v", s, a)
	}
	if s, a := call(t, http.MethodGet, srv.URL+"/v1/ledger/accounts/"+me+"/history?limit=5&receipt=true", ""); s != 200 || len(a.History) != 2 {
		t.Fatalf("history: %d %+v", s, a)
	} else {
		checkReceipt(t, dir, "history", a)
	}
	if s, a := call(t, http.MethodGet, srv.URL+"/v1/ledger/accounts/nothex/balance", ""); s != 400 || a.ExitCode != 2 {
		t.Fatalf("bad account: %d %+v", s, a)
	}
	resp, err := http.Get(srv.URL + "/v1/kv/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a ledger gateway serves /v1/kv/: %d", resp.StatusCode)
	}
}
