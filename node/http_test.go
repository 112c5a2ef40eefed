package node

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/internal/opstest"
	"github.com/prometheus/client_golang/prometheus"
)

// readyCase is one replica state and what /readyz must answer for it.
type readyCase struct {
	name       string
	st         Status
	peers      int
	peersKnown bool
	wantCode   int
	wantReason string
}

// checkReadyz serves each case's state with rule and checks /readyz's
// code and reason, and that /status carries the same verdict.
func checkReadyz(t *testing.T, rule Readiness, cases []readyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(newOpsHandler(prometheus.NewRegistry(), opsState{
				rule:   rule,
				status: func() Status { return c.st },
				peers:  func() (int, bool) { return c.peers, c.peersKnown },
			}))
			defer srv.Close()
			code, body := opstest.Get(t, srv.URL+"/readyz")
			if code != c.wantCode || !strings.Contains(body, c.wantReason) {
				t.Fatalf("/readyz = %d %q, want %d containing %q", code, body, c.wantCode, c.wantReason)
			}
			_, body = opstest.Get(t, srv.URL+"/status")
			var r StatusReport
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("/status is not JSON: %v\n%s", err, body)
			}
			if r.Ready != (c.wantCode == 200) || !strings.Contains(r.ReadyReason, c.wantReason) || r.Consensus != rule.Consensus {
				t.Fatalf("/status ready=%v reason=%q consensus=%q, want %v, %q, %q", r.Ready, r.ReadyReason, r.Consensus, c.wantCode == 200, c.wantReason, rule.Consensus)
			}
		})
	}
}

// edited returns a copy of st changed by edit.
func edited(st Status, edit func(*Status)) Status {
	edit(&st)
	return st
}

// A PBFT replica is ready only when it is caught up (active view, no
// state transfer, executed up to its stable checkpoint) and connected to
// 2f other replicas; having executed something is not enough (issue 17:
// with 2 of 4 replicas down /readyz answered 200).
func TestReadyzPBFTReasons(t *testing.T) {
	caughtUp := Status{Index: 1, View: 2, ViewActive: true, ExecutedSequence: 13, StableCheckpoint: 8}
	with := func(edit func(*Status)) Status { return edited(caughtUp, edit) }
	checkReadyz(t, PBFTReadiness(4), []readyCase{
		{"ready", caughtUp, 2, true, 200, "view 2, connected to 2 of 3 other replicas (a quorum needs 2), executed up to sequence 13"},
		{"all peers down", caughtUp, 0, true, 503, "no quorum: connected to 0 of 3 other replicas, a quorum needs 2"},
		{"two of four down", caughtUp, 1, true, 503, "no quorum: connected to 1 of 3"},
		{"fresh and isolated", Status{ViewActive: true}, 0, true, 503, "no quorum"},
		{"changing view", with(func(s *Status) { s.ViewActive, s.View = false, 3 }), 3, true, 503, "changing view (to view 3)"},
		{"transferring", with(func(s *Status) { s.Transferring = true }), 3, true, 503, "state transfer in progress"},
		{"behind its checkpoint", with(func(s *Status) { s.ExecutedSequence = 4 }), 3, true, 503, "behind: executed up to sequence 4, below its stable checkpoint 8"},
		{"peers unknown", caughtUp, 0, false, 503, "does not report connected replicas"},
	})
}

// A Raft replica is ready only with a known leader, not waiting for a
// snapshot, and connected to f other replicas; the reasons speak of
// terms, applied indexes and snapshots.
func TestReadyzRaftReasons(t *testing.T) {
	caughtUp := Status{Index: 0, View: 5, ViewActive: true, Leader: 2, ExecutedSequence: 40, StableCheckpoint: 32}
	with := func(edit func(*Status)) Status { return edited(caughtUp, edit) }
	checkReadyz(t, RaftReadiness(3), []readyCase{
		{"ready", caughtUp, 1, true, 200, "leader 2 in term 5, connected to 1 of 2 other replicas (a quorum needs 1), applied up to index 40"},
		{"no leader", with(func(s *Status) { s.ViewActive, s.Leader = false, -1 }), 2, true, 503, "no known leader in term 5"},
		{"waiting for a snapshot", with(func(s *Status) { s.Transferring = true }), 2, true, 503, "state transfer in progress (applied up to index 40, snapshot index 32)"},
		{"all peers down", caughtUp, 0, true, 503, "no quorum: connected to 0 of 2 other replicas, a quorum needs 1"},
	})
}

func TestStatusReport(t *testing.T) {
	st := Status{Index: 2, View: 3, ViewActive: true, ExecutedSequence: 7, Leader: 3}
	st.StateDigest[0] = 0xab
	peers, peersKnown := 0, false
	srv := httptest.NewServer(newOpsHandler(prometheus.NewRegistry(), opsState{
		rule:   PBFTReadiness(4),
		status: func() Status { return st },
		peers:  func() (int, bool) { return peers, peersKnown },
	}))
	defer srv.Close()

	if code, body := opstest.Get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	code, body := opstest.Get(t, srv.URL+"/status")
	if code != 200 {
		t.Fatalf("/status = %d", code)
	}
	var r StatusReport
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	if r.Index != 2 || r.View != 3 || !r.ViewActive || r.ExecutedSequence != 7 || r.Ready || r.Replicas != 4 ||
		r.Consensus != "pbft" || r.Leader != 3 ||
		!strings.HasPrefix(r.StateDigest, "ab00") || len(r.StateDigest) != 64 || r.ConnectedPeers != nil {
		t.Fatalf("/status = %+v", r)
	}
	if strings.Contains(body, "connected_peers") {
		t.Fatalf("/status reports connected_peers though the transport does not: %s", body)
	}
	peersKnown, peers = true, 3
	_, body = opstest.Get(t, srv.URL+"/status")
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.ConnectedPeers == nil || *r.ConnectedPeers != 3 || !r.Ready {
		t.Fatalf("/status with peers = %s (%v)", body, err)
	}
}

func TestReadyzSaysTheApplicationIsUnavailable(t *testing.T) {
	st := Status{View: 1, ViewActive: true, ExecutedSequence: 9}
	var appErr error
	srv := httptest.NewServer(newOpsHandler(prometheus.NewRegistry(), opsState{
		rule:      PBFTReadiness(4),
		status:    func() Status { return st },
		peers:     func() (int, bool) { return 3, true },
		appHealth: func() error { return appErr },
	}))
	defer srv.Close()
	if code, _ := opstest.Get(t, srv.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz with a healthy application = %d", code)
	}
	appErr = errors.New("application at unix:///run/app.sock: connection refused")
	code, body := opstest.Get(t, srv.URL+"/readyz")
	if code != 503 || !strings.Contains(body, "application unavailable: application at unix:///run/app.sock: connection refused") {
		t.Fatalf("/readyz with the application down = %d %q", code, body)
	}
}
