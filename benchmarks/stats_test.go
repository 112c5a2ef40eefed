package benchmarks

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.01, 1 * time.Millisecond},
		{0.5, 50 * time.Millisecond},
		{0.95, 95 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{0.995, 100 * time.Millisecond},
		{1, 100 * time.Millisecond},
	} {
		if got := Percentile(lat, tc.q); got != tc.want {
			t.Errorf("Percentile(1..100 ms, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestPercentileSmallSamples(t *testing.T) {
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile of no sample = %v, want 0", got)
	}
	one := []time.Duration{7 * time.Millisecond}
	for _, q := range []float64{0.01, 0.5, 0.99, 1} {
		if got := Percentile(one, q); got != 7*time.Millisecond {
			t.Errorf("Percentile(one sample, %v) = %v, want 7ms", q, got)
		}
	}
	// Three samples: p50 is the second (rank ceil(1.5) = 2), p99 the third.
	three := []time.Duration{1, 2, 3}
	if got := Percentile(three, 0.5); got != 2 {
		t.Errorf("p50 of 1,2,3 = %v, want 2", got)
	}
	if got := Percentile(three, 0.99); got != 3 {
		t.Errorf("p99 of 1,2,3 = %v, want 3", got)
	}
}

// TestPercentileMatchesSortedRank checks the definition on random data:
// at least q of the samples are at or below the result, and fewer than q
// are strictly below it.
func TestPercentileMatchesSortedRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 50 {
		n := 1 + rng.IntN(500)
		lat := make([]time.Duration, n)
		for i := range lat {
			lat[i] = time.Duration(rng.IntN(1000))
		}
		slices.Sort(lat)
		for _, q := range []float64{0.5, 0.95, 0.99} {
			p := Percentile(lat, q)
			atOrBelow, below := 0, 0
			for _, l := range lat {
				if l <= p {
					atOrBelow++
				}
				if l < p {
					below++
				}
			}
			if float64(atOrBelow) < q*float64(n) || float64(below) >= q*float64(n) {
				t.Fatalf("n=%d q=%v: p=%v has %d at or below and %d below", n, q, p, atOrBelow, below)
			}
		}
	}
}

func TestUnavailability(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	for _, tc := range []struct {
		name      string
		completed []time.Duration
		from, to  time.Duration
		want      time.Duration
	}{
		{"steady completions", []time.Duration{1 * s, 1*s + 100*ms, 1*s + 200*ms, 1*s + 300*ms}, 1 * s, 1*s + 300*ms, 100 * ms},
		{"gap after the fault", []time.Duration{900 * ms, 1*s + 10*ms, 2*s + 510*ms, 2*s + 520*ms, 3 * s}, 1 * s, 3 * s, 1500 * ms},
		{"first completion long after the fault", []time.Duration{500 * ms, 2500 * ms, 2600 * ms}, 1 * s, 2600 * ms, 1500 * ms},
		{"completions before the fault do not count", []time.Duration{100 * ms, 200 * ms, 1200 * ms}, 1 * s, 1200 * ms, 200 * ms},
		{"nothing completes after the fault", []time.Duration{100 * ms}, 1 * s, 4 * s, 3 * s},
		{"stall at the end", []time.Duration{1100 * ms, 1200 * ms}, 1 * s, 5 * s, 3800 * ms},
		{"completions after the end are ignored", []time.Duration{1100 * ms, 9 * s}, 1 * s, 2 * s, 900 * ms},
		{"empty interval", []time.Duration{1 * s}, 2 * s, 2 * s, 0},
	} {
		if got := Unavailability(tc.completed, tc.from, tc.to); got != tc.want {
			t.Errorf("%s: Unavailability = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWithinSelectsTheMeasuredInterval(t *testing.T) {
	samples := []sample{
		{done: 500 * time.Millisecond, latency: 9},  // warmup
		{done: 1500 * time.Millisecond, latency: 3}, // measured
		{done: 1 * time.Second, latency: 5},         // measured: from is inclusive
		{done: 3 * time.Second, latency: 1},         // after: to is exclusive
		{done: 2 * time.Second, latency: 4},         // measured
	}
	w := within(samples, time.Second, 3*time.Second)
	if w.ops != 3 {
		t.Fatalf("ops = %d, want 3", w.ops)
	}
	if !slices.Equal(w.latencies, []time.Duration{3, 4, 5}) {
		t.Errorf("latencies = %v, want [3 4 5] (sorted, measured only)", w.latencies)
	}
	if !slices.Equal(w.completed, []time.Duration{time.Second, 1500 * time.Millisecond, 2 * time.Second}) {
		t.Errorf("completion times = %v, want sorted 1s 1.5s 2s", w.completed)
	}
}

func TestSummarizeCPUAndBytes(t *testing.T) {
	var res Result
	res.CryptoCeilingOps = ptr(4000.0)
	w := window{ops: 2000, latencies: []time.Duration{time.Millisecond, 3 * time.Millisecond}}
	before := map[int]counters{
		0: {cpuSeconds: 10, p2pBytesSent: 1000, msgBytesSent: 100, view: 3, batches: 10, persists: 5, persistSeconds: 1},
		1: {cpuSeconds: 20, p2pBytesSent: 2000, msgBytesSent: 200, view: 3, batches: 10, persists: 5, persistSeconds: 1},
	}
	after := map[int]counters{
		// +1 s, +400000, +40000; 100 batches, 150 persists taking 0.5 s
		0: {cpuSeconds: 11, p2pBytesSent: 401000, msgBytesSent: 40100, batches: 110, persists: 155, persistSeconds: 1.5},
		// +3 s, +200000, +20000, 2 views; 100 batches, 150 persists taking 1.5 s
		1: {cpuSeconds: 23, p2pBytesSent: 202000, msgBytesSent: 20200, view: 5, batches: 110, persists: 155, persistSeconds: 2.5},
		2: {cpuSeconds: 99}, // not measured at the start
	}
	summarize(&res, w, 1, 0, 2*time.Second, before, after)
	check := func(name string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("throughput", res.ThroughputOps, 1000)
	check("crypto ceiling fraction", *res.CryptoCeilingFraction, 0.25)
	check("CPU s per 1k ops, all replicas", res.CPUSecondsPer1kOpsAll, 2)      // 4 s / 2 kops
	check("CPU s per 1k ops per replica", res.CPUSecondsPer1kOpsPerReplica, 1) // over 2 replicas
	check("bytes sent per op", res.BytesSentPerOp, 300)
	check("message bytes sent per op", res.MessageBytesSentPerOp, 30)
	check("p50 ms", res.LatencyP50Ms, 1)
	check("p99 ms", res.LatencyP99Ms, 3)
	check("persists per batch", res.PersistsPerBatch, 1.5)       // 300 over 200 batches
	check("persist ms", res.PersistMsAvg, 2000.0/300)            // 2 s over 300
	check("persist busy fraction", res.PersistBusyFraction, 0.5) // 1 s a replica in 2 s
	if res.ViewChanges != 2 {
		t.Errorf("view changes = %d, want 2 (highest view 3 -> 5)", res.ViewChanges)
	}
	if res.FailedOps != 1 || res.Ops != 2000 {
		t.Errorf("ops %d failed %d, want 2000 and 1", res.Ops, res.FailedOps)
	}
}

// TestSummarizeSplitsReadsAndWrites: reads and writes are counted and
// timed apart (read_throughput_ops, write_throughput_ops and their
// latencies) beside the totals.
func TestSummarizeSplitsReadsAndWrites(t *testing.T) {
	ms := time.Millisecond
	samples := []sample{
		{done: 1100 * ms, latency: 1 * ms, read: true},
		{done: 1200 * ms, latency: 2 * ms, read: true},
		{done: 1300 * ms, latency: 3 * ms, read: true},
		{done: 1400 * ms, latency: 20 * ms},
		{done: 500 * ms, latency: 90 * ms, read: true}, // warmup
	}
	var res Result
	summarize(&res, within(samples, time.Second, 3*time.Second), 0, 0, 2*time.Second, nil, nil)
	for name, got := range map[string][2]float64{
		"throughput":       {res.ThroughputOps, 2},
		"read throughput":  {res.ReadThroughputOps, 1.5},
		"write throughput": {res.WriteThroughputOps, 0.5},
		"read p50":         {res.ReadLatencyP50Ms, 2},
		"read p99":         {res.ReadLatencyP99Ms, 3},
		"write p50":        {res.WriteLatencyP50Ms, 20},
		"write p99":        {res.WriteLatencyP99Ms, 20},
	} {
		if got[0] != got[1] {
			t.Errorf("%s = %v, want %v", name, got[0], got[1])
		}
	}
	if res.ReadOps != 3 || res.WriteOps != 1 {
		t.Errorf("read ops %d, write ops %d; want 3 and 1", res.ReadOps, res.WriteOps)
	}
}
