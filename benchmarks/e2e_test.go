package benchmarks

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestRunPBFTEndToEnd builds the pbftnode binary and runs a 2-second
// PBFT n=4 benchmark on four replica processes: the harness must measure
// operations, latency, CPU, bytes and the crypto ceiling.
func TestRunPBFTEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the pbftnode binary and runs 4 replica processes for a few seconds; skipped under -short")
	}
	bin := buildPbftnode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	profDir := filepath.Join(t.TempDir(), "profiles")
	res, err := Run(ctx, Config{
		Binary: bin, Protocol: "pbft", Replicas: 4, NoFsync: true,
		Clients: 2, Window: 8,
		Duration: 2 * time.Second, Warmup: 500 * time.Millisecond, CeilingDuration: 300 * time.Millisecond,
		WorkDir: t.TempDir(), Keep: true, CPUProfileDir: profDir,
	})
	if err != nil {
		t.Fatalf("bench run: %v", err)
	}
	t.Logf("%s: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, %.3f CPU s/1k ops/replica, %.0f B/op, ceiling %.0f ops/s",
		res.Label, res.ThroughputOps, res.LatencyP50Ms, res.LatencyP99Ms, res.CPUSecondsPer1kOpsPerReplica,
		res.BytesSentPerOp, *res.CryptoCeilingOps)
	if res.ThroughputOps <= 0 || res.Ops <= 0 {
		t.Errorf("throughput %v ops/s from %d ops, want > 0", res.ThroughputOps, res.Ops)
	}
	if res.LatencyP50Ms <= 0 || res.LatencyP99Ms < res.LatencyP50Ms {
		t.Errorf("p50 %v ms, p99 %v ms: want 0 < p50 <= p99", res.LatencyP50Ms, res.LatencyP99Ms)
	}
	if res.CryptoCeilingOps == nil || *res.CryptoCeilingOps <= 0 || res.CryptoCeilingFraction == nil {
		t.Errorf("no crypto ceiling in a PBFT run: %v, fraction %v", res.CryptoCeilingOps, res.CryptoCeilingFraction)
	}
	if res.CPUSecondsPer1kOpsPerReplica <= 0 {
		t.Errorf("CPU per 1k ops per replica %v, want > 0 (replicas did work)", res.CPUSecondsPer1kOpsPerReplica)
	}
	// Every operation crosses the network at least as a request and f+1
	// replies, and the protocol adds pre-prepares, prepares and commits.
	if res.BytesSentPerOp <= 0 {
		t.Errorf("bytes sent per op %v, want > 0", res.BytesSentPerOp)
	}
	// --cpuprofile-dir: a gzipped pprof profile from every replica (written
	// as it shut down) and from the harness.
	for _, name := range []string{"node0", "node1", "node2", "node3", "harness"} {
		checkProfile(t, filepath.Join(profDir, name+".pprof"))
	}
	if res.ViewChangeTimeoutMs != 1000 {
		t.Errorf("view-change timeout %v ms, want the default 1000", res.ViewChangeTimeoutMs)
	}

	// The floor on the same binary: replica processes that verify, relay
	// and answer, measured against a crypto ceiling of their own.
	floor, err := Run(ctx, Config{
		Binary: bin, Protocol: ProtocolFloor, Clients: 2, Window: 8,
		Duration: time.Second, Warmup: 300 * time.Millisecond, CeilingDuration: 300 * time.Millisecond,
		WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("floor run: %v", err)
	}
	t.Logf("%s: %.0f ops/s, %.1f requests per relayed batch", floor.Label, floor.ThroughputOps, floor.RequestsPerBatch)
	if floor.Replicas != 4 || floor.ThroughputOps <= 0 || floor.CryptoCeilingFraction == nil {
		t.Errorf("floor run: n=%d, %v ops/s, ceiling fraction %v: want n=4 answering, with a ceiling", floor.Replicas, floor.ThroughputOps, floor.CryptoCeilingFraction)
	}
	// Every replica counts the requests it relayed or answered in batches.
	if floor.RequestsPerBatch < 1 {
		t.Errorf("floor: %v requests per batch, want >= 1 (the primary relays every request)", floor.RequestsPerBatch)
	}
}

// checkProfile fails t unless path holds a gzipped, non-empty profile,
// the format runtime/pprof writes and go tool pprof reads.
func checkProfile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Errorf("profile: %v", err)
		return
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Errorf("profile %s is not gzipped: %v", path, err)
		return
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil || n == 0 {
		t.Errorf("profile %s: %d bytes, %v", path, n, err)
	}
}

// buildPbftnode builds cmd/pbftnode into the test's temporary directory
// and returns the binary's path.
func buildPbftnode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pbftnode")
	build := exec.Command("go", "build", "-o", bin, "github.com/pbftnode/pbftnode/cmd/pbftnode")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
