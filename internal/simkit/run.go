package simkit

import (
	"fmt"
	"runtime"
	"sync"
)

// Violation is a failed check.
type Violation struct {
	Seed   uint64 `json:"seed"`
	Kind   string `json:"kind"`
	Step   uint64 `json:"step"`
	Tick   int64  `json:"tick"`
	Detail string `json:"detail"`
}

// Violation kinds both simulators check.
const (
	KindAgreement       = "agreement"
	KindValidity        = "validity"
	KindLinearizability = "linearizability"
	KindLiveness        = "liveness"
	KindInternal        = "internal"
)

func (v Violation) String() string {
	return fmt.Sprintf("seed %d: %s violation at step %d (tick %d): %s", v.Seed, v.Kind, v.Step, v.Tick, v.Detail)
}

// Tally is the part of a summary of runs that counts and lists what
// failed.
type Tally struct {
	Violations  uint64      `json:"violations"`
	FailedSeeds []uint64    `json:"failed_seeds"`
	Failures    []Violation `json:"failures,omitempty"`
}

// Add notes the violations of the run of seed.
func (f *Tally) Add(seed uint64, vs []Violation) {
	if len(vs) == 0 {
		return
	}
	f.Violations += uint64(len(vs))
	f.FailedSeeds = append(f.FailedSeeds, seed)
	f.Failures = append(f.Failures, vs...)
}

// RunMany runs seeds start..start+count-1 with run on workers goroutines
// (GOMAXPROCS when workers <= 0) and returns the results in seed order.
// Each call of run must be a separate single-threaded run that shares
// nothing with the others.
func RunMany[R any](start, count uint64, workers int, run func(seed uint64) R) []R {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	results := make([]R, count)
	next := make(chan uint64)
	var wg sync.WaitGroup
	for range min(uint64(workers), max(count, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = run(start + i)
			}
		}()
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}
