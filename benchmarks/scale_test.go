package benchmarks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func caseNames(cases []ScaleCase) []string {
	var out []string
	for _, c := range cases {
		out = append(out, fmt.Sprintf("%s/%s%d/%d", c.Sweep, c.Protocol, c.Replicas, c.Keys))
	}
	return out
}

// TestScalePlan: each plan runs exactly its configurations, PBFT and
// Raft alternating.
func TestScalePlan(t *testing.T) {
	want := map[string][]string{
		ScalePlanSmall: {"n/pbft4/0", "n/raft3/0", "n/pbft7/0", "n/raft5/0",
			"keys/pbft4/10000", "keys/raft3/10000", "keys/pbft4/100000", "keys/raft3/100000"},
		ScalePlanN: {"n/pbft4/0", "n/raft3/0", "n/pbft7/0", "n/raft5/0", "n/pbft10/0", "n/raft7/0", "n/pbft13/0", "n/raft9/0"},
		ScalePlanKeys: {"keys/pbft4/10000", "keys/raft3/10000", "keys/pbft4/100000", "keys/raft3/100000",
			"keys/pbft4/1000000", "keys/raft3/1000000", "keys/pbft4/10000000", "keys/raft3/10000000"},
	}
	want[ScalePlanFull] = slices.Concat(want[ScalePlanN], want[ScalePlanKeys])
	for _, plan := range ScalePlans {
		cases, err := ScalePlan(plan)
		if err != nil {
			t.Fatalf("ScalePlan(%q): %v", plan, err)
		}
		if got := caseNames(cases); !slices.Equal(got, want[plan]) {
			t.Errorf("ScalePlan(%q) = %v, want %v", plan, got, want[plan])
		}
	}
	for plan, want := range map[string][]string{
		"keys:1M":           {"keys/pbft4/1000000", "keys/raft3/1000000"},
		"keys:1000000:pbft": {"keys/pbft4/1000000"},
		"keys:10k:raft":     {"keys/raft3/10000"},
	} {
		cases, err := ScalePlan(plan)
		if got := caseNames(cases); err != nil || !slices.Equal(got, want) {
			t.Errorf("ScalePlan(%q) = %v, %v; want %v", plan, got, err, want)
		}
	}
	for _, plan := range []string{"huge", "keys:2M", "keys:1M:etcd"} {
		if _, err := ScalePlan(plan); !errors.Is(err, ErrConfig) {
			t.Fatalf("ScalePlan(%s) = %v, want ErrConfig", plan, err)
		}
	}
}

// TestScaleConfig: a keys case loads the preloaded key space and skips the
// crypto ceiling; an n case keeps the base's.
func TestScaleConfig(t *testing.T) {
	base := Config{Binary: "/bin/true", Keys: 500, Duration: time.Second}
	cfg := scaleConfig(base, ScaleCase{Sweep: SweepKeys, Protocol: "raft", Replicas: 3, Keys: 1_000_000})
	if cfg.Keys != 1_000_000 || cfg.Protocol != "raft" || cfg.Replicas != 3 || cfg.CeilingDuration >= 0 || !strings.HasSuffix(cfg.Label, "keys=1M") {
		t.Fatalf("keys case: %+v", cfg)
	}
	cfg = scaleConfig(base, ScaleCase{Sweep: SweepN, Protocol: "pbft", Replicas: 13})
	if cfg.Keys != 500 || cfg.Replicas != 13 || cfg.CeilingDuration <= 0 {
		t.Fatalf("n case: %+v", cfg)
	}
}

// fakeExecuted answers from a script: replica -> one answer per round
// (the last repeats); a negative value is an unreachable replica.
type fakeExecuted struct {
	script map[int][]int64
	round  int
}

func (f *fakeExecuted) executed(_ context.Context, i int) (uint64, error) {
	answers := f.script[i]
	v := answers[min(f.round, len(answers)-1)]
	if v < 0 {
		return 0, errors.New("connection refused")
	}
	return uint64(v), nil
}

// fakeWatch is a catchUpWatch over f with a fake clock that each pause
// advances by 100 ms (and moves f to its next round).
func fakeWatch(f *fakeExecuted, timeout time.Duration) (catchUpWatch, time.Time) {
	start := time.Unix(1000, 0)
	now := start
	return catchUpWatch{
		src: f, target: 3, others: []int{0, 1, 2}, timeout: timeout,
		now: func() time.Time { return now },
		pause: func(context.Context) error {
			now = now.Add(100 * time.Millisecond)
			f.round++
			return nil
		},
	}, start
}

// TestCatchUpWatch: the wait ends at the first round in which the wiped
// replica's executed sequence reached the lowest of the others' that
// answered; unanswered reads never count as caught up.
func TestCatchUpWatch(t *testing.T) {
	f := &fakeExecuted{script: map[int][]int64{
		0: {100, 120, 140, 160, 180, 200, 220},
		1: {-1, -1, -1, -1, 170, 190, 210},
		2: {90, 110, 130, 150, 165, 185, 205},
		// Restarting (unreachable), restoring (0), then 150 < 165,
		// then 190: at least the lowest (185) though below 200 and 220.
		3: {-1, -1, 0, 0, 150, 190, 230},
	}}
	w, start := fakeWatch(f, time.Minute)
	took, seq, err := w.wait(context.Background(), start)
	if err != nil || took != 500*time.Millisecond || seq != 190 {
		t.Fatalf("wait = %v, %d, %v; want 500ms, 190, nil", took, seq, err)
	}

	// Others unreachable do not lower the bar to zero.
	f = &fakeExecuted{script: map[int][]int64{0: {-1}, 1: {-1, 50, 70}, 2: {-1, -1, 60}, 3: {10, 10, 55, 60}}}
	w, start = fakeWatch(f, time.Minute)
	if took, seq, err = w.wait(context.Background(), start); err != nil || took != 300*time.Millisecond || seq != 60 {
		t.Fatalf("wait = %v, %d, %v; want 300ms, 60, nil", took, seq, err)
	}

	// Never reached: a timeout, after the timeout.
	f = &fakeExecuted{script: map[int][]int64{0: {100}, 1: {100}, 2: {100}, 3: {99}}}
	w, start = fakeWatch(f, 2*time.Second)
	took, _, err = w.wait(context.Background(), start)
	if !errors.Is(err, errCatchUpTimeout) || took < 2*time.Second {
		t.Fatalf("wait = %v, %v; want errCatchUpTimeout after 2s", took, err)
	}
}

// TestWriteScaleReport: a report of both sweeps writes the JSON, the
// table and the four plots; a replica that did not catch up shows as a
// bound.
func TestWriteScaleReport(t *testing.T) {
	res := func(sweep, proto string, n, keys int, ops float64) ScaleResult {
		r := ScaleResult{Result: Result{Label: fmt.Sprintf("%s n=%d %d", proto, n, keys), Protocol: proto, Replicas: n, Ops: 100, ThroughputOps: ops, Group: GroupScaling, Fsync: true},
			Sweep: sweep, PreloadKeys: keys, LoadAvg1: 1.5}
		if sweep == SweepKeys {
			r.MaxRSSMiB, r.CatchUpMs, r.CaughtUp = 100, ptr(2500.0), ptr(true)
		}
		return r
	}
	results := []ScaleResult{
		res(SweepN, "pbft", 4, 0, 3000), res(SweepN, "raft", 3, 0, 9000), res(SweepN, "pbft", 7, 0, 2000),
		res(SweepKeys, "pbft", 4, 10_000, 3000), res(SweepKeys, "raft", 3, 10_000, 9000),
		res(SweepKeys, "pbft", 4, 100_000, 2800), res(SweepKeys, "raft", 3, 100_000, 8000),
	}
	results[6].CaughtUp = ptr(false)
	dir := t.TempDir()
	paths, err := WriteScaleReport(dir, results)
	if err != nil {
		t.Fatalf("WriteScaleReport: %v", err)
	}
	for _, name := range []string{ScaleReportJSON, ScaleReportTable, PlotScaleN, PlotScaleKeys, PlotScaleRSS, PlotScaleCatchUpKeys} {
		path := filepath.Join(dir, name)
		if !slices.Contains(paths, path) {
			t.Errorf("%s not among the paths written %v", name, paths)
		}
		if st, err := os.Stat(path); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	var table bytes.Buffer
	if err := WriteScaleTable(&table, results[6:]); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), ">2.5") {
		t.Fatalf("table does not mark the replica that did not catch up:\n%s", table.String())
	}
}

// TestScaleRatios: the n=10/n=4 and largest/smallest state ratios, from
// PBFT results only.
func TestScaleRatios(t *testing.T) {
	r := func(sweep, proto string, n, keys int, ops float64) ScaleResult {
		return ScaleResult{Result: Result{Protocol: proto, Replicas: n, Ops: 1, ThroughputOps: ops}, Sweep: sweep, PreloadKeys: keys}
	}
	got := ScaleRatios([]ScaleResult{
		r(SweepN, "pbft", 4, 0, 4000), r(SweepN, "raft", 3, 0, 9000), r(SweepN, "pbft", 10, 0, 1000), r(SweepN, "raft", 10, 0, 100),
		r(SweepKeys, "pbft", 4, 10_000_000, 3000), r(SweepKeys, "pbft", 4, 10_000, 4000), r(SweepKeys, "raft", 3, 100, 1),
		r(SweepKeys, "pbft", 4, 100_000, 1),
	})
	want := []ScaleRatio{
		{"PBFT n=10 / n=4, saturated throughput", 0.25, 0.5},
		{"PBFT n=4 at 10M keys / at 10k keys, throughput", 0.75, 0.8},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ScaleRatios = %v, want %v", got, want)
	}
}
