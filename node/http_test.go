package node

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/internal/opstest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestOpsHandlerReadinessAndStatus(t *testing.T) {
	st := Status{Index: 2, View: 3, ViewActive: true, ExecutedSequence: 0, StableCheckpoint: 0}
	st.StateDigest[0] = 0xab
	peers, peersKnown := 0, false
	srv := httptest.NewServer(newOpsHandler(prometheus.NewRegistry(), opsState{
		replicas:    4,
		quorumPeers: 2,
		status:      func() Status { return st },
		peers:       func() (int, bool) { return peers, peersKnown },
	}))
	defer srv.Close()

	if code, body := opstest.Get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	check := func(wantCode int, wantReason string) {
		t.Helper()
		code, body := opstest.Get(t, srv.URL+"/readyz")
		if code != wantCode || !strings.Contains(body, wantReason) {
			t.Fatalf("/readyz = %d %q, want %d containing %q", code, body, wantCode, wantReason)
		}
	}
	check(503, "nothing executed yet")
	peersKnown, peers = true, 1
	check(503, "a quorum needs 2")
	peers = 2
	check(200, "connected to 2 of 3")
	peersKnown = false
	st.ExecutedSequence = 7
	check(200, "executed up to sequence 7")
	st.ViewActive = false
	check(503, "changing view")
	st.ViewActive, st.Transferring = true, true
	check(503, "state transfer")
	st.Transferring = false

	code, body := opstest.Get(t, srv.URL+"/status")
	if code != 200 {
		t.Fatalf("/status = %d", code)
	}
	var r StatusReport
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	if r.Index != 2 || r.View != 3 || !r.ViewActive || r.ExecutedSequence != 7 || !r.Ready || r.Replicas != 4 ||
		!strings.HasPrefix(r.StateDigest, "ab00") || len(r.StateDigest) != 64 || r.ConnectedPeers != nil {
		t.Fatalf("/status = %+v", r)
	}
	if strings.Contains(body, "connected_peers") {
		t.Fatalf("/status reports connected_peers though the transport does not: %s", body)
	}
	peersKnown, peers = true, 3
	_, body = opstest.Get(t, srv.URL+"/status")
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.ConnectedPeers == nil || *r.ConnectedPeers != 3 {
		t.Fatalf("/status with peers = %s (%v)", body, err)
	}
}
