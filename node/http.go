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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The operations HTTP endpoints, served on the metrics address:
//
//	/metrics  Prometheus metrics
//	/healthz  200 "ok" while the process serves HTTP (liveness)
//	/readyz   200 when Ready holds, 503 otherwise, with the reason as text
//	/status   StatusReport as JSON

// StatusReport is the JSON document served at /status.
type StatusReport struct {
	Index            uint32 `json:"index"`
	Replicas         int    `json:"replicas"`
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
	Leader      int    `json:"leader"`
	Ready       bool   `json:"ready"`
	ReadyReason string `json:"ready_reason"`
}

// opsState is what the HTTP handlers read; a func for each so that the
// handlers can be tested without a running replica.
type opsState struct {
	replicas int
	// quorumPeers is how many other replicas make a quorum with this one:
	// 2f for PBFT (n = 3f+1), f for Raft (n = 2f+1).
	quorumPeers int
	status      func() Status
	peers       func() (int, bool)
}

// Ready decides readiness: the replica is in an active view, is not
// transferring state, and either has executed at least one batch or (when
// the transport reports it) is connected to at least 2f other replicas,
// enough with itself for a quorum of 2f+1. It returns the reason.
func (s opsState) ready(st Status) (bool, string) {
	switch {
	case !st.ViewActive:
		return false, fmt.Sprintf("changing view (to view %d)", st.View)
	case st.Transferring:
		return false, "state transfer in progress"
	}
	if peers, ok := s.peers(); ok && peers >= s.quorumPeers {
		return true, fmt.Sprintf("connected to %d of %d other replicas (quorum needs %d)", peers, s.replicas-1, s.quorumPeers)
	}
	if st.ExecutedSequence > 0 {
		return true, fmt.Sprintf("executed up to sequence %d", st.ExecutedSequence)
	}
	if peers, ok := s.peers(); ok {
		return false, fmt.Sprintf("connected to %d other replicas, a quorum needs %d, and nothing executed yet", peers, s.quorumPeers)
	}
	return false, "nothing executed yet"
}

func (s opsState) report() StatusReport {
	st := s.status()
	r := StatusReport{
		Index:            st.Index,
		Replicas:         s.replicas,
		View:             st.View,
		ViewActive:       st.ViewActive,
		ViewChanges:      st.ViewChanges,
		ExecutedSequence: st.ExecutedSequence,
		StableCheckpoint: st.StableCheckpoint,
		StateDigest:      hex.EncodeToString(st.StateDigest[:]),
		Transferring:     st.Transferring,
		Leader:           st.Leader,
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
// and keeps it in the shell (Shutdown closes it). The runtime has
// replicas replicas, of which quorumPeers others make a quorum with it
// (2f for PBFT, f for Raft); status is its latest Status, and the
// transport (StartHost first) reports the connected replicas.
func (s *Shell) ServeOps(addr string, m *Metrics, replicas, quorumPeers int, status func() Status, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	st := opsState{
		replicas: replicas, quorumPeers: quorumPeers, status: status,
		peers: func() (int, bool) {
			if s.Host == nil {
				return 0, false
			}
			return s.Host.ConnectedPeers(), true
		},
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
