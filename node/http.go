package node

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The operations HTTP endpoints, served on the metrics address:
//
//	/metrics  Prometheus metrics
//	/healthz  200 "ok" while the process serves HTTP (liveness)
//	/readyz   200 when the replica is ready (caught up and able to reach a
//	          quorum: Readiness.decide), 503 otherwise, with the reason as text
//	/status   StatusReport as JSON

// StatusReport is the JSON document served at /status.
type StatusReport struct {
	Index    uint32 `json:"index"`
	Replicas int    `json:"replicas"`
	// Consensus is "pbft", "raft" or "floor". For Raft, View is the term,
	// ExecutedSequence the applied index and StableCheckpoint the latest
	// snapshot index.
	Consensus        string `json:"consensus"`
	View             uint64 `json:"view"`
	ViewActive       bool   `json:"view_active"`
	ViewChanges      uint64 `json:"view_changes"`
	ExecutedSequence uint64 `json:"executed_sequence"`
	StableCheckpoint uint64 `json:"stable_checkpoint"`
	// StateDigest is the digest of the application state, in hex.
	StateDigest  string `json:"state_digest"`
	Transferring bool   `json:"transferring"`
	// ConnectedPeers is the number of other replicas the transport is
	// connected to, or absent if the transport does not report it.
	ConnectedPeers *int `json:"connected_peers,omitempty"`
	// Leader is the replica this one believes orders requests (the PBFT
	// primary of View, or the Raft leader); -1 when unknown.
	Leader int  `json:"leader"`
	Ready  bool `json:"ready"`
	// ReadyReason says why the replica is ready or, when it is not, what
	// it lacks (see Readiness.decide).
	ReadyReason string `json:"ready_reason"`
	// Epoch is the membership epoch the replica is in (0: the cluster
	// file's configuration); Members lists that epoch's member indices,
	// ascending (docs/reconfiguration.md).
	Epoch   uint64   `json:"epoch"`
	Members []uint32 `json:"members"`
}

// opsState is what the HTTP handlers read; a func for each so that the
// handlers can be tested without a running replica.
type opsState struct {
	rule   Readiness
	status func() Status
	// peers is how many other replicas the transport is connected to, and
	// whether it reports that at all.
	peers func() (int, bool)
	// appHealth says why the application cannot execute (nil: it can, or
	// its availability never changes).
	appHealth func() error
}

// ready decides readiness from st and the transport's connections (see
// Readiness.decide) and returns the reason.
func (s opsState) ready(st Status) (bool, string) {
	if s.appHealth != nil {
		if err := s.appHealth(); err != nil {
			return false, fmt.Sprintf("application unavailable: %v", err)
		}
	}
	peers, known := s.peers()
	return s.rule.decide(st, peers, known)
}

func (s opsState) report() StatusReport {
	st := s.status()
	r := StatusReport{
		Index:            st.Index,
		Replicas:         s.rule.Replicas,
		Consensus:        s.rule.Consensus,
		View:             st.View,
		ViewActive:       st.ViewActive,
		ViewChanges:      st.ViewChanges,
		ExecutedSequence: st.ExecutedSequence,
		StableCheckpoint: st.StableCheckpoint,
		StateDigest:      hex.EncodeToString(st.StateDigest[:]),
		Transferring:     st.Transferring,
		Leader:           st.Leader,
		Epoch:            st.Epoch,
		Members:          st.Members,
	}
	if r.Members == nil {
		r.Members = []uint32{} // a list, never null
	}
	if peers, ok := s.peers(); ok {
		r.ConnectedPeers = &peers
	}
	r.Ready, r.ReadyReason = s.ready(st)
	return r
}

// newOpsHandler returns the mux of the operations endpoints.
func newOpsHandler(registry *prometheus.Registry, s opsState) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, reason := s.ready(s.status())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %s\n", reason)
			return
		}
		_, _ = fmt.Fprintf(w, "ready: %s\n", reason)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.report())
	})
	return mux
}

// ServeOps starts the operations HTTP server on addr, when addr is set,
// and keeps it in the shell (Shutdown closes it). rule says what the
// runtime's replica needs to be ready (PBFTReadiness, RaftReadiness);
// status is its latest Status, and the transport (StartHost first)
// reports the connected replicas.
func (s *Shell) ServeOps(addr string, m *Metrics, rule Readiness, status func() Status, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	st := opsState{
		rule: rule, status: status,
		peers: func() (int, bool) {
			if s.Host == nil {
				return 0, false
			}
			return s.Host.ConnectedPeers(), true
		},
	}
	if h, ok := s.App.(execution.HealthReporter); ok {
		st.appHealth = h.Health
	}
	srv, l, err := serveOps(addr, m, st, log)
	if err != nil {
		return err
	}
	s.http, s.metricsL = srv, l
	return nil
}

// serveOps serves the operations endpoints on addr until the returned
// server is closed.
func serveOps(addr string, m *Metrics, s opsState, log *slog.Logger) (*http.Server, net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("node: metrics listener: %w", err)
	}
	srv := &http.Server{Handler: newOpsHandler(m.Registry, s), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return srv, l, nil
}
