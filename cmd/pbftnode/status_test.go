package main

import (
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/node"
)

// TestStatusWordsPerConsensus: `pbftnode status` speaks each protocol's
// language: a Raft replica has a term, a leader, an applied index and a
// snapshot index (issue 17: it printed "view" and "stable checkpoint"),
// a PBFT replica a view, a primary, an executed sequence and a stable
// checkpoint.
func TestStatusWordsPerConsensus(t *testing.T) {
	peers := 2
	cases := []struct {
		report      node.StatusReport
		want, avoid []string
	}{
		{
			node.StatusReport{Consensus: "raft", Replicas: 3, View: 4, ViewActive: true, Leader: 1, ExecutedSequence: 40, StableCheckpoint: 32, ConnectedPeers: &peers},
			[]string{"term:               4 (leader 1)", "applied index:      40", "snapshot index:     32", "connected peers:    2 of 2"},
			[]string{"view", "stable checkpoint", "executed sequence", "primary"},
		},
		{
			node.StatusReport{Consensus: "raft", Replicas: 3, View: 5, Leader: -1},
			[]string{"term:               5 (no known leader)"},
			[]string{"view", "leader -1"},
		},
		{
			node.StatusReport{Consensus: "pbft", Replicas: 4, View: 2, ViewActive: true, Leader: 2, ExecutedSequence: 13, StableCheckpoint: 8},
			[]string{"view:               2 (active, primary 2)", "executed sequence:  13", "stable checkpoint:  8", "connected peers:    unknown"},
			[]string{"term", "snapshot", "leader"},
		},
	}
	for _, c := range cases {
		var out strings.Builder
		printStatus(&out, c.report, "test", "ledger")
		if !strings.Contains(out.String(), "application:        ledger") {
			t.Errorf("status does not name the application:\n%s", out.String())
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s status lacks %q:\n%s", c.report.Consensus, w, out.String())
			}
		}
		for _, w := range c.avoid {
			if strings.Contains(out.String(), w) {
				t.Errorf("%s status says %q:\n%s", c.report.Consensus, w, out.String())
			}
		}
	}
}
