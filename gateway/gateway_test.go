package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

// fakeCluster answers every operation with result (or err), after
// entered (if not nil) was signalled and release (if not nil) closed.
type fakeCluster struct {
	result []byte
	err    error
	// receiptErr is what InvokeWithReceipt returns instead of err;
	// invokes counts Invoke calls.
	receiptErr error
	invokes    atomic.Int32
	entered    chan struct{}
	release    chan struct{}
	calls      atomic.Int32
}

func (f *fakeCluster) Read(ctx context.Context, op []byte) ([]byte, error) {
	raw, _, err := f.InvokeWithReceipt(ctx, op)
	return raw, err
}

func (f *fakeCluster) Invoke(ctx context.Context, op []byte) ([]byte, error) {
	f.invokes.Add(1)
	return f.result, f.err
}

func (f *fakeCluster) InvokeWithReceipt(ctx context.Context, _ []byte) ([]byte, *receipt.Receipt, error) {
	f.calls.Add(1)
	if f.entered != nil {
		select { // a buffered channel: the test waits for the first only
		case f.entered <- struct{}{}:
		default:
		}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("fake: %w: %w", client.ErrUnknownOutcome, ctx.Err())
		}
	}
	if f.receiptErr != nil {
		return f.result, nil, f.receiptErr
	}
	return f.result, nil, f.err
}

func kvResult(t *testing.T, r *wire.KVResult) []byte {
	t.Helper()
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve starts a gateway over f on a real HTTP listener.
func serve(t *testing.T, f *fakeCluster, edit func(*Config)) *httptest.Server {
	t.Helper()
	cfg := Config{Cluster: f, CallTimeout: 30 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request and decodes the JSON answer into a map.
func do(t *testing.T, method, url string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s %s: %d, answer is not JSON: %v", method, url, resp.StatusCode, err)
	}
	return resp, v
}

// wantError checks an error answer's status, outcome and exit code.
func wantError(t *testing.T, resp *http.Response, v map[string]any, status int, outcome string, exit int) {
	t.Helper()
	if resp.StatusCode != status || v["outcome"] != outcome || v["exit_code"] != float64(exit) || v["error"] == "" {
		t.Fatalf("got %d %v, want %d outcome %s exit_code %d", resp.StatusCode, v, status, outcome, exit)
	}
}

func TestGetAnswersValueAsTextAndBase64(t *testing.T) {
	f := &fakeCluster{result: kvResult(t, &wire.KVResult{Ok: true, Value: []byte("héllo")})}
	srv := serve(t, f, nil)
	resp, v := do(t, http.MethodGet, srv.URL+"/v1/kv/a%2Fb", nil)
	if resp.StatusCode != 200 || v["found"] != true || v["value"] != "héllo" || v["value_base64"] != "aMOpbGxv" || v["key"] != "a/b" {
		t.Fatalf("get: %d %v", resp.StatusCode, v)
	}
	f.result = kvResult(t, &wire.KVResult{Ok: true, Value: []byte{0xff, 0}})
	_, v = do(t, http.MethodGet, srv.URL+"/v1/kv/k", nil)
	if _, ok := v["value"]; ok || v["value_base64"] != "/wA=" {
		t.Fatalf("binary value: %v", v)
	}
}

func TestBodyOverTheLimitIs413(t *testing.T) {
	f := &fakeCluster{result: kvResult(t, &wire.KVResult{Ok: true})}
	srv := serve(t, f, nil)
	resp, v := do(t, http.MethodPut, srv.URL+"/v1/kv/k", bytes.NewReader(make([]byte, MaxValueSize+1)))
	wantError(t, resp, v, http.StatusRequestEntityTooLarge, outcomeNotSent, exitUsage)
	// Without a Content-Length (chunked), the limit holds while reading.
	resp, v = do(t, http.MethodPut, srv.URL+"/v1/kv/k", io.MultiReader(bytes.NewReader(make([]byte, MaxValueSize)), strings.NewReader("x")))
	wantError(t, resp, v, http.StatusRequestEntityTooLarge, outcomeNotSent, exitUsage)
	if n := f.calls.Load(); n != 0 {
		t.Fatalf("%d oversized operations reached the cluster", n)
	}
	resp, v = do(t, http.MethodPut, srv.URL+"/v1/kv/k", bytes.NewReader(make([]byte, MaxValueSize)))
	if resp.StatusCode != 200 || v["ok"] != true {
		t.Fatalf("a value of exactly the limit: %d %v", resp.StatusCode, v)
	}
	resp, v = do(t, http.MethodGet, srv.URL+"/v1/kv/"+strings.Repeat("k", MaxKeySize+1), nil)
	wantError(t, resp, v, http.StatusBadRequest, outcomeNotSent, exitUsage)
}

func TestFullGatewayAnswers503WithRetryAfter(t *testing.T) {
	f := &fakeCluster{result: kvResult(t, &wire.KVResult{Ok: true}), entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := serve(t, f, func(c *Config) { c.MaxInFlight = 1 })
	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/v1/kv/k/cas", "application/json", strings.NewReader(`{"new":"v"}`))
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	select {
	case <-f.entered: // the first operation holds the only slot
	case <-time.After(time.Minute):
		t.Fatal("the first operation never reached the cluster")
	}
	resp, v := do(t, http.MethodPut, srv.URL+"/v1/kv/k", strings.NewReader("v"))
	wantError(t, resp, v, http.StatusServiceUnavailable, outcomeNotSent, exitNotSent)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	close(f.release)
	if s := <-first; s != 200 {
		t.Fatalf("the first operation: %d", s)
	}
	// The slot is free again.
	if resp, v := do(t, http.MethodPut, srv.URL+"/v1/kv/k", strings.NewReader("v")); resp.StatusCode != 200 {
		t.Fatalf("after the first finished: %d %v", resp.StatusCode, v)
	}
}

func TestWrongMethodIs405(t *testing.T) {
	srv := serve(t, &fakeCluster{}, nil)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPost, "/v1/kv/k", "PUT, GET, DELETE"},
		{http.MethodPatch, "/v1/kv/k", "PUT, GET, DELETE"},
		{http.MethodGet, "/v1/kv/k/cas", "POST"},
		{http.MethodPost, "/openapi.json", "GET"},
	} {
		resp, v := do(t, tc.method, srv.URL+tc.path, nil)
		wantError(t, resp, v, http.StatusMethodNotAllowed, outcomeNotSent, exitUsage)
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Fatalf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	resp, v := do(t, http.MethodGet, srv.URL+"/v2/nothing", nil)
	wantError(t, resp, v, http.StatusNotFound, outcomeNotSent, exitUsage)
}

func TestMalformedCASBodyIs400(t *testing.T) {
	f := &fakeCluster{result: kvResult(t, &wire.KVResult{Ok: true})}
	srv := serve(t, f, nil)
	for _, body := range []string{
		`{`, `[]`, `{"new":1}`, `{"old":"a"}`, `{"new":"a","extra":1}`,
		`{"new":"a","new_base64":"YQ=="}`, `{"new_base64":"!!"}`, `{"new":"a"}{}`,
	} {
		resp, v := do(t, http.MethodPost, srv.URL+"/v1/kv/k/cas", strings.NewReader(body))
		wantError(t, resp, v, http.StatusBadRequest, outcomeNotSent, exitUsage)
	}
	if n := f.calls.Load(); n != 0 {
		t.Fatalf("%d malformed cas operations reached the cluster", n)
	}
	resp, v := do(t, http.MethodPost, srv.URL+"/v1/kv/k/cas", strings.NewReader(`{"old":null,"new_base64":"YQ=="}`))
	if resp.StatusCode != 200 || v["swapped"] != true {
		t.Fatalf("well-formed cas: %d %v", resp.StatusCode, v)
	}
}

func TestClusterOutcomesMapToStatuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       *fakeCluster
		status  int
		outcome string
		exit    int
	}{
		{"unknown", &fakeCluster{err: fmt.Errorf("x: %w", client.ErrUnknownOutcome)}, http.StatusGatewayTimeout, outcomeUnknown, exitUnknown},
		{"refused by replicas", &fakeCluster{err: fmt.Errorf("x: %w", client.ErrRefused)}, http.StatusConflict, outcomeRefused, exitRefused},
		{"refused by the application", &fakeCluster{result: kvResult(t, &wire.KVResult{Error: "key too long"})}, http.StatusConflict, outcomeRefused, exitRefused},
		{"undecodable", &fakeCluster{result: []byte{0xff, 0xff}}, http.StatusBadGateway, outcomeUnknown, exitUnknown},
		{"not sent", &fakeCluster{err: client.ErrClosed}, http.StatusBadGateway, outcomeNotSent, exitNotSent},
		{"no window before the deadline", &fakeCluster{err: fmt.Errorf("client: %w", context.DeadlineExceeded)}, http.StatusServiceUnavailable, outcomeNotSent, exitNotSent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.f, nil)
			resp, v := do(t, http.MethodDelete, srv.URL+"/v1/kv/k", nil)
			wantError(t, resp, v, tc.status, tc.outcome, tc.exit)
		})
	}
}

// An operation executed without a complete receipt is executed (200),
// and the answer says why it has no receipt.
func TestIncompleteReceiptIsExecuted(t *testing.T) {
	f := &fakeCluster{result: kvResult(t, &wire.KVResult{Ok: true}), receiptErr: fmt.Errorf("x: %w", client.ErrIncompleteReceipt)}
	srv := serve(t, f, nil)
	resp, v := do(t, http.MethodPut, srv.URL+"/v1/kv/k", strings.NewReader("v"))
	if resp.StatusCode != 200 || v["ok"] != true || v["receipt"] != nil || !strings.Contains(fmt.Sprint(v["receipt_error"]), "receipt incomplete") {
		t.Fatalf("put with an incomplete receipt: %d %v", resp.StatusCode, v)
	}
}

// A cluster that signs no receipts (Raft) is asked with Invoke, from the
// first ErrNoReceipts on.
func TestClusterWithoutReceiptsIsInvoked(t *testing.T) {
	f := &fakeCluster{result: kvResult(t, &wire.KVResult{Ok: true}), receiptErr: client.ErrNoReceipts}
	srv := serve(t, f, nil)
	for range 2 {
		if resp, v := do(t, http.MethodDelete, srv.URL+"/v1/kv/k", nil); resp.StatusCode != 200 || v["receipt"] != nil {
			t.Fatalf("delete: %d %v", resp.StatusCode, v)
		}
	}
	if f.calls.Load() != 1 || f.invokes.Load() != 2 {
		t.Fatalf("%d InvokeWithReceipt, %d Invoke calls: want 1 and 2", f.calls.Load(), f.invokes.Load())
	}
}

// The call timeout ends a call the cluster does not answer: outcome
// unknown, 504.
func TestCallTimeoutIs504(t *testing.T) {
	f := &fakeCluster{release: make(chan struct{})}
	srv := serve(t, f, func(c *Config) { c.CallTimeout = 50 * time.Millisecond })
	resp, v := do(t, http.MethodPut, srv.URL+"/v1/kv/k", strings.NewReader("v"))
	wantError(t, resp, v, http.StatusGatewayTimeout, outcomeUnknown, exitUnknown)
}

// openAPIDocument fetches and decodes /openapi.json.
func openAPIDocument(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, v := do(t, http.MethodGet, url+"/openapi.json", nil)
	if resp.StatusCode != 200 || v["openapi"] != "3.0.3" {
		t.Fatalf("openapi.json: %d %v", resp.StatusCode, v["openapi"])
	}
	return v
}

func TestOpenAPINamesEveryRoute(t *testing.T) {
	for _, application := range []string{"kv", "ledger"} {
		f := &fakeCluster{}
		srv := serve(t, f, func(c *Config) { c.Application = application })
		doc := openAPIDocument(t, srv.URL)
		paths, _ := doc["paths"].(map[string]any)
		g, err := New(Config{Cluster: f, Application: application})
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range g.routes {
			p, _ := paths[rt.pattern].(map[string]any)
			op, _ := p[strings.ToLower(rt.method)].(map[string]any)
			if op == nil || op["operationId"] == "" {
				t.Fatalf("%s: openapi.json lacks %s %s: %v", application, rt.method, rt.pattern, paths)
			}
			if strings.Contains(rt.pattern, "{") && op["parameters"] == nil {
				t.Fatalf("%s %s: no path parameter", rt.method, rt.pattern)
			}
		}
		if len(g.routes) < 6 {
			t.Fatalf("%s: only %d routes", application, len(g.routes))
		}
	}
}
