package benchmarks

import (
	"math"
	"slices"
	"sync"
	"time"
)

// sample is one completed operation: when it completed (since the load
// started) and how long it took.
type sample struct {
	done    time.Duration
	latency time.Duration
	// read: the operation was a read (sent through client.Read).
	read bool
}

// recorder collects samples from concurrent workers.
type recorder struct {
	mu      sync.Mutex
	samples []sample
	failed  int
}

func (r *recorder) add(done, latency time.Duration, read bool) {
	r.mu.Lock()
	r.samples = append(r.samples, sample{done: done, latency: latency, read: read})
	r.mu.Unlock()
}

// fail counts an operation that returned an error or a refusal.
func (r *recorder) fail() {
	r.mu.Lock()
	r.failed++
	r.mu.Unlock()
}

// count returns how many operations completed so far.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.samples)
}

// snapshot returns a copy of the samples and the failure count.
func (r *recorder) snapshot() ([]sample, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples), r.failed
}

// window is what the samples completed in [from, to) say.
type window struct {
	ops       int
	latencies []time.Duration // sorted ascending
	completed []time.Duration // completion times, sorted ascending
	// readLatencies and writeLatencies split latencies by kind (sorted).
	readLatencies, writeLatencies []time.Duration
}

// within selects the samples that completed in [from, to).
func within(samples []sample, from, to time.Duration) window {
	var w window
	for _, s := range samples {
		if s.done >= from && s.done < to {
			w.latencies = append(w.latencies, s.latency)
			w.completed = append(w.completed, s.done)
			if s.read {
				w.readLatencies = append(w.readLatencies, s.latency)
			} else {
				w.writeLatencies = append(w.writeLatencies, s.latency)
			}
		}
	}
	w.ops = len(w.latencies)
	slices.Sort(w.latencies)
	slices.Sort(w.completed)
	slices.Sort(w.readLatencies)
	slices.Sort(w.writeLatencies)
	return w
}

// Percentile returns the q-quantile (0 < q <= 1) of sorted latencies by
// the nearest-rank method: the smallest sample with at least q of all
// samples at or below it. It is exact (no histogram buckets) and 0 when
// there is no sample.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Unavailability returns the longest interval within [from, to] without a
// completed operation: the gaps between from, each completion time in
// (from, to], and to. completed must be sorted. With from the moment a
// fault was injected, it is the unavailability window the fault caused
// (if nothing completed after it, the whole rest of the run).
func Unavailability(completed []time.Duration, from, to time.Duration) time.Duration {
	if to <= from {
		return 0
	}
	longest, last := time.Duration(0), from
	for _, c := range completed {
		if c <= from {
			continue
		}
		if c > to {
			break
		}
		longest = max(longest, c-last)
		last = c
	}
	return max(longest, to-last)
}
