package benchmarks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plotResults is a small matrix: scaling for both protocols, one-client
// and sweep points for the smallest clusters, and a failed run.
func plotResults() []Result {
	mk := func(group, proto string, n int, ops, p50 float64) Result {
		return Result{Group: group, Protocol: proto, Replicas: n, Scenario: ScenarioNone, Fsync: true,
			Ops: int(ops * 10), ThroughputOps: ops, LatencyP50Ms: p50, LatencyP99Ms: 3 * p50}
	}
	return []Result{
		mk(GroupScaling, "pbft", 4, 3000, 40), mk(GroupScaling, "pbft", 7, 1800, 70), mk(GroupScaling, "pbft", 10, 1100, 110),
		mk(GroupScaling, "raft", 3, 6000, 20), mk(GroupScaling, "raft", 5, 5000, 25), mk(GroupScaling, "raft", 7, 4200, 30),
		mk(GroupOneClient, "pbft", 4, 300, 3.3), mk(GroupOneClient, "raft", 3, 700, 1.4),
		mk(GroupRateSweep, "pbft", 4, 1500, 8), mk(GroupRateSweep, "raft", 3, 3000, 4),
		mk(GroupFloor, ProtocolFloor, 4, 5000, 30),
		{Group: GroupScaling, Protocol: "raft", Replicas: 9, Error: "failed"},
	}
}

func TestWritePlots(t *testing.T) {
	dir := t.TempDir()
	paths, err := WritePlots(dir, plotResults())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("wrote %v, want 2 plots", paths)
	}
	for _, name := range []string{PlotThroughputLatency, PlotThroughputVsN} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		svg := string(b)
		if !strings.Contains(svg, "<svg") {
			t.Errorf("%s is not SVG (%d bytes)", name, len(b))
		}
		for _, legend := range []string{"pbft", "raft"} {
			if !strings.Contains(svg, legend) {
				t.Errorf("%s has no %q series in its legend", name, legend)
			}
		}
		// The floor is a point of the throughput-against-n plot only.
		if got, want := strings.Contains(svg, "floor (PBFT without agreement)"), name == PlotThroughputVsN; got != want {
			t.Errorf("%s shows the floor: %v, want %v", name, got, want)
		}
	}
}

func TestWritePlotsWithOneProtocol(t *testing.T) {
	// Before the Raft mode exists, the plots hold PBFT only.
	var pbftOnly []Result
	for _, r := range plotResults() {
		if r.Protocol == "pbft" {
			pbftOnly = append(pbftOnly, r)
		}
	}
	dir := t.TempDir()
	if _, err := WritePlots(dir, pbftOnly); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, PlotThroughputVsN))
	if err != nil || len(b) == 0 {
		t.Fatalf("throughput-vs-n plot: %d bytes, %v", len(b), err)
	}
	if strings.Contains(string(b), "raft") {
		t.Error("a PBFT-only plot mentions raft")
	}
}

func TestWriteReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results")
	paths, err := WriteReport(dir, plotResults())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ReportJSON, ReportTable, PlotThroughputLatency, PlotThroughputVsN} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (size %d)", name, err, sizeOf(st))
		}
	}
	if len(paths) != 4 {
		t.Errorf("WriteReport returned %v, want 4 paths", paths)
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return -1
	}
	return st.Size()
}

func TestWritePlotsShowPeers(t *testing.T) {
	results := append(plotResults(),
		Result{Group: GroupScaling, Protocol: PeerEtcd, Replicas: 3, Scenario: ScenarioNone, Fsync: true, Ops: 120000, ThroughputOps: 12000, LatencyP50Ms: 75, LatencyP99Ms: 220},
		Result{Group: GroupModerate, Protocol: PeerEtcd, Replicas: 3, Scenario: ScenarioNone, Fsync: true, Ops: 60000, ThroughputOps: 6000, LatencyP50Ms: 9, LatencyP99Ms: 30},
		Result{Group: GroupOneClient, Protocol: PeerEtcd, Replicas: 3, Scenario: ScenarioNone, Fsync: true, Ops: 8500, ThroughputOps: 850, LatencyP50Ms: 1.1, LatencyP99Ms: 2.3},
		Result{Group: GroupModerate, Protocol: PeerCometBFT, Replicas: 4, Scenario: ScenarioNone, Fsync: true, Ops: 6500, ThroughputOps: 650, LatencyP50Ms: 100, LatencyP99Ms: 140},
	)
	dir := t.TempDir()
	if _, err := WritePlots(dir, results); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		PlotThroughputLatency: {"etcd n=3 p50", "cometbft n=4 p50", "pbft n=4 p50"},
		PlotThroughputVsN:     {"etcd"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, legend := range want {
			if !strings.Contains(string(b), legend) {
				t.Errorf("%s has no %q series beside pbftnode's", name, legend)
			}
		}
	}
}

// A matrix whose every run failed still gets its (empty) plots: a
// --compare where nothing could be measured reports its errors.
func TestWritePlotsWithNoResult(t *testing.T) {
	failed := []Result{{Group: GroupScaling, Protocol: "pbft", Replicas: 4, Error: "failed"}}
	if paths, err := WritePlots(t.TempDir(), failed); err != nil || len(paths) != 2 {
		t.Errorf("plots of failed runs: %v, %v", paths, err)
	}
}
