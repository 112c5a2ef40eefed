package simkit

import (
	"fmt"
	"log/slog"
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
	// KindLedgerInvariant: a correct replica's ledger broke one of its
	// invariants (ledger.Ledger.Invariants).
	KindLedgerInvariant = "ledger-invariant"
)

// Violated returns the violation of kind found at step and tick of the
// run of seed, and logs it to log at debug level.
func Violated(log *slog.Logger, seed uint64, kind string, step uint64, tick int64, detail string) Violation {
	log.Debug("violation", "seed", seed, "kind", kind, "step", step, "detail", detail)
	return Violation{Seed: seed, Kind: kind, Step: step, Tick: tick, Detail: detail}
}

func (v Violation) String() string {
	return fmt.Sprintf("seed %d: %s violation at step %d (tick %d): %s", v.Seed, v.Kind, v.Step, v.Tick, v.Detail)
}

// Invalid is the violation of a run whose configuration err rejects.
func Invalid(seed uint64, err error) []Violation {
	return []Violation{{Seed: seed, Kind: KindInternal, Detail: err.Error()}}
}

// Drive runs a world's phases in order: setup, then, if it succeeded,
// the main loop and the checks at the end. A setup error is reported
// through fail as an internal violation.
func Drive(setup func() error, loop, finish func(), fail func(kind, detail string)) {
	if err := setup(); err != nil {
		fail(KindInternal, fmt.Sprintf("setup: %v", err))
		return
	}
	loop()
	finish()
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
