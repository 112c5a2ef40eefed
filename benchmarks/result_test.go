package benchmarks

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func pbftResult() Result {
	return Result{
		Label: "pbft n=4 c=8x16", Protocol: "pbft", Replicas: 4, F: 1, Fsync: true, Scenario: ScenarioNone,
		Ops: 30000, ThroughputOps: 3000, LatencyP50Ms: 12.5, LatencyP95Ms: 30, LatencyP99Ms: 45.25,
		ReadThroughputOps: 2700, WriteThroughputOps: 300, ReadLatencyP50Ms: 2.5, ReadLatencyP99Ms: 4.5,
		WriteLatencyP50Ms: 20, WriteLatencyP99Ms: 60.5,
		CPUSecondsPer1kOpsPerReplica: 0.1234, BytesSentPerOp: 812, RequestsPerBatch: 41.25,
		CryptoCeilingOps: ptr(6000.0), CryptoCeilingFraction: ptr(0.5), BackgroundCPUCores: 0.125,
	}
}

func raftResult() Result {
	return Result{
		Label: "raft n=3 crash-leader c=8x16", Protocol: "raft", Replicas: 3, F: 1, Fsync: true, Scenario: ScenarioCrashLeader,
		Ops: 50000, ThroughputOps: 5000, LatencyP50Ms: 5, LatencyP95Ms: 9, LatencyP99Ms: 20,
		UnavailabilityMs: ptr(1234.0),
	}
}

func TestResultJSONFieldNames(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, []Result{pbftResult()}); err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(buf.Bytes(), &obj); err != nil {
		t.Fatalf("one result is not one JSON object: %v\n%s", err, buf.String())
	}
	for field, want := range map[string]float64{
		"throughput_ops": 3000, "latency_p50_ms": 12.5, "latency_p95_ms": 30, "latency_p99_ms": 45.25,
		"crypto_ceiling_ops": 6000, "crypto_ceiling_fraction": 0.5,
		"cpu_seconds_per_1k_ops_per_replica": 0.1234, "bytes_sent_per_op": 812, "replicas": 4,
		"read_throughput_ops": 2700, "write_throughput_ops": 300, "read_latency_p50_ms": 2.5,
		"read_latency_p99_ms": 4.5, "write_latency_p50_ms": 20, "write_latency_p99_ms": 60.5,
	} {
		got, ok := obj[field].(float64)
		if !ok || got != want {
			t.Errorf("JSON field %q = %v, want %v", field, obj[field], want)
		}
	}
	if _, ok := obj["unavailability_ms"]; ok {
		t.Error("a run without a fault reports unavailability_ms")
	}

	buf.Reset()
	if err := WriteJSON(&buf, []Result{pbftResult(), raftResult()}); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &list); err != nil || len(list) != 2 {
		t.Fatalf("two results are not a JSON list of two (%v):\n%s", err, buf.String())
	}
	raft := list[1]
	if _, ok := raft["crypto_ceiling_ops"]; ok {
		t.Error("a Raft result reports crypto_ceiling_ops")
	}
	if raft["unavailability_ms"] != 1234.0 || raft["protocol"] != "raft" {
		t.Errorf("Raft result: unavailability_ms %v, protocol %v", raft["unavailability_ms"], raft["protocol"])
	}
}

func TestWriteTable(t *testing.T) {
	failed := Result{Label: "raft n=5 c=8x16", Protocol: "raft", Error: "testnet --protocol raft: unsupported\nmore detail"}
	var buf bytes.Buffer
	if err := WriteTable(&buf, []Result{pbftResult(), raftResult(), failed}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want a header and 3 rows:\n%s", len(lines), buf.String())
	}
	for _, col := range []string{"ops/s", "reads/s", "writes/s", "read p99", "write p99", "p50 ms", "p95 ms", "p99 ms", "CPU s/1k ops/replica", "bytes/op", "req/batch", "of ceiling", "unavail ms", "bg cores"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %q: %s", col, lines[0])
		}
	}
	pbft := strings.Fields(lines[1])
	want := []string{"pbft", "n=4", "c=8x16", "3000", "2700", "300", "12.50", "30.00", "45.25", "4.50", "60.50", "0.123", "812", "41.2", "6000", "50%", "-", "0.12"}
	if strings.Join(pbft, " ") != strings.Join(want, " ") {
		t.Errorf("PBFT row = %q, want fields %q", lines[1], want)
	}
	raft := strings.Fields(lines[2])
	if strings.Join(raft[len(raft)-4:], " ") != "- - 1234 0.00" {
		t.Errorf("Raft row should end in the unavailability and background load and show no ceiling: %q", lines[2])
	}
	if !strings.Contains(lines[3], "error") || !strings.HasSuffix(lines[3], "testnet --protocol raft: unsupported") {
		t.Errorf("failed row = %q, want the error's first line", lines[3])
	}
	if len(lines[2]) > len(lines[0]) {
		t.Errorf("the error message widened the columns:\n%s", buf.String())
	}
	// Labels start in the same column.
	if strings.Index(lines[1], "pbft") != strings.Index(lines[2], "raft") {
		t.Errorf("labels not aligned:\n%s", buf.String())
	}
}
