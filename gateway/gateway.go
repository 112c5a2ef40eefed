package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/receipt"
)

// Limits and defaults of a Gateway.
const (
	// MaxValueSize is the largest value a PUT body or a cas value may
	// hold: the key-value store's own limit. A larger body gets 413.
	MaxValueSize = execution.MaxValueSize
	// MaxKeySize is the longest key (after unescaping): the key-value
	// store's own limit. A longer one gets 400.
	MaxKeySize = execution.MaxKeySize
	// maxJSONBodySize bounds a JSON request body (cas, mint, transfer):
	// two values of MaxValueSize, base64-encoded, and slack for the rest.
	maxJSONBodySize = 3*MaxValueSize + bodySlack
	bodySlack       = 64 << 10
	// DefaultCallTimeout is how long one operation may wait for the
	// cluster before the answer is outcome unknown (504).
	DefaultCallTimeout = 15 * time.Second
	// DefaultMaxInFlight bounds the operations in flight at once: the
	// replicas' per-client window (client.Config.Window's default).
	DefaultMaxInFlight = 64
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes = 16 << 10
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout bound how long a
	// connection may take to send a request's headers, its whole request,
	// and how long it may stay idle between requests. The write timeout
	// is the call timeout plus writeSlack.
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	IdleTimeout       = 60 * time.Second
	writeSlack        = 10 * time.Second
	// retryAfter is the Retry-After (seconds) of a 503.
	retryAfter = "1"
)

// Cluster is what the gateway needs of a pbftnode client: a
// *client.Client. Every call is safe for concurrent use, returns the
// agreed result bytes, and fails with client.ErrUnknownOutcome,
// client.ErrRefused or an error before sending, as Invoke does.
type Cluster interface {
	// Invoke orders op (a cluster that signs no receipts: Raft).
	Invoke(ctx context.Context, op []byte) ([]byte, error)
	// Read runs a read-only operation on the fast path (falling back to
	// ordering it); it returns no receipt.
	Read(ctx context.Context, op []byte) ([]byte, error)
	// InvokeWithReceipt orders op and returns its result and the receipt
	// the replicas signed for it; client.ErrIncompleteReceipt with the
	// result when the receipt did not complete in time,
	// client.ErrNoReceipts (before sending) when the cluster signs none.
	InvokeWithReceipt(ctx context.Context, op []byte) ([]byte, *receipt.Receipt, error)
}

// Config configures a Gateway.
type Config struct {
	// Cluster sends the operations (required).
	Cluster Cluster
	// Application is the cluster's application: config.ApplicationKV
	// (also "") serves /v1/kv/, config.ApplicationLedger /v1/ledger/.
	Application string
	// NoReceipts says the cluster signs no receipts (the Raft mode):
	// ordered operations then use Invoke rather than wait for receipts
	// that never come. (A cluster whose client says client.ErrNoReceipts
	// is treated so from then on.)
	NoReceipts bool
	// Account is the gateway key's public key: the ledger account its
	// transfers move funds from (reported by /healthz).
	Account []byte
	// CallTimeout bounds each operation's wait for the cluster (default
	// DefaultCallTimeout).
	CallTimeout time.Duration
	// MaxInFlight bounds the operations in flight (default
	// DefaultMaxInFlight); one more gets 503 with Retry-After.
	MaxInFlight int
	Logger      *slog.Logger
}

// Gateway is the HTTP handler. Safe for concurrent use.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	slots  chan struct{}
	routes []route
	mux    *http.ServeMux
	// noReceipts is set once the cluster said it signs no receipts
	// (client.ErrNoReceipts): ordered operations then use Invoke.
	noReceipts atomic.Bool
}

// route is one operation of the API: what the OpenAPI document says of
// it and the handler that runs it.
type route struct {
	method, pattern string
	summary         string
	// query lists the query parameters the route reads (name: meaning).
	query [][2]string
	// body is the request body: "" none, "value" (the raw value) or the
	// name of a JSON schema in the OpenAPI document's components.
	body string
	// bounded routes take an in-flight slot.
	bounded bool
	handle  func(w http.ResponseWriter, r *http.Request) (answer, error)
}

// New returns a Gateway serving cfg.Application's routes.
func New(cfg Config) (*Gateway, error) {
	if cfg.Cluster == nil {
		return nil, errors.New("gateway: no cluster")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, slots: make(chan struct{}, cfg.MaxInFlight)}
	g.noReceipts.Store(cfg.NoReceipts)
	switch cfg.Application {
	case "", config.ApplicationKV:
		g.routes = g.kvRoutes()
	case config.ApplicationLedger:
		g.routes = g.ledgerRoutes()
	default:
		return nil, fmt.Errorf("gateway: application %q: the gateway serves %s and %s", cfg.Application, config.ApplicationKV, config.ApplicationLedger)
	}
	g.routes = append(g.routes,
		route{method: http.MethodGet, pattern: "/healthz", summary: "Liveness of the gateway process (not of the cluster)", handle: g.healthz},
		route{method: http.MethodGet, pattern: "/openapi.json", summary: "This document", handle: nil})
	g.mux = http.NewServeMux()
	byPattern := map[string][]route{}
	var patterns []string
	for _, rt := range g.routes {
		if _, ok := byPattern[rt.pattern]; !ok {
			patterns = append(patterns, rt.pattern)
		}
		byPattern[rt.pattern] = append(byPattern[rt.pattern], rt)
	}
	for _, p := range patterns {
		g.mux.HandleFunc(p, g.dispatch(byPattern[p]))
	}
	g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, errorAnswer{Error: "no such path: " + r.URL.Path, Outcome: outcomeNotSent, ExitCode: exitUsage})
	})
	return g, nil
}

// ServeHTTP serves the API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// NewServer returns an http.Server for g on addr with the gateway's
// header, read, write and idle bounds.
func (g *Gateway) NewServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           g,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      g.cfg.CallTimeout + writeSlack,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

// dispatch runs the route of rs whose method the request has: 405 with
// Allow when none; 503 with Retry-After when a bounded route finds every
// in-flight slot taken.
func (g *Gateway) dispatch(rs []route) http.HandlerFunc {
	var allow []string
	for _, rt := range rs {
		allow = append(allow, rt.method)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		i := slices.IndexFunc(rs, func(rt route) bool { return rt.method == r.Method })
		if i < 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, errorAnswer{Error: fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")), Outcome: outcomeNotSent, ExitCode: exitUsage})
			return
		}
		rt := rs[i]
		if rt.handle == nil { // the OpenAPI document
			writeJSON(w, http.StatusOK, g.openAPI())
			return
		}
		if rt.bounded {
			select {
			case g.slots <- struct{}{}:
				defer func() { <-g.slots }()
			default:
				w.Header().Set("Retry-After", retryAfter)
				writeError(w, http.StatusServiceUnavailable, errorAnswer{Error: fmt.Sprintf("gateway busy: %d operations in flight", cap(g.slots)), Outcome: outcomeNotSent, ExitCode: exitNotSent})
				return
			}
		}
		a, err := rt.handle(w, r)
		if err != nil {
			g.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	}
}

// call runs op on the cluster within the call timeout: ordered with a
// receipt when ordered, else on the read-only path. A cluster that signs
// no receipts (Raft) orders without one. The error wraps
// client.ErrIncompleteReceipt, with the result, when the operation was
// executed but its receipt did not complete in time.
func (g *Gateway) call(r *http.Request, op []byte, ordered bool) ([]byte, *receipt.Receipt, error) {
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.CallTimeout)
	defer cancel()
	if !ordered {
		raw, err := g.cfg.Cluster.Read(ctx, op)
		return raw, nil, err
	}
	if !g.noReceipts.Load() {
		raw, rec, err := g.cfg.Cluster.InvokeWithReceipt(ctx, op)
		if !errors.Is(err, client.ErrNoReceipts) {
			return raw, rec, err
		}
		g.noReceipts.Store(true) // nothing was sent
	}
	raw, err := g.cfg.Cluster.Invoke(ctx, op)
	return raw, nil, err
}

// fail writes err's error answer and logs it.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, e := classify(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	g.log.Debug("gateway: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	writeError(w, status, e)
}

// healthz reports the gateway process alive, with its application and
// (ledger) account.
func (g *Gateway) healthz(http.ResponseWriter, *http.Request) (answer, error) {
	a := answer{Operation: "healthz", Outcome: outcomeExecuted, OK: true, Application: g.cfg.Application}
	if a.Application == "" {
		a.Application = config.ApplicationKV
	}
	if a.Application == config.ApplicationLedger && len(g.cfg.Account) > 0 {
		a.Account = hex.EncodeToString(g.cfg.Account)
	}
	return a, nil
}
