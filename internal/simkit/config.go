package simkit

import (
	"fmt"
	"log/slog"
	"reflect"
)

// DefaultMaxSteps is the simulators' default step limit per run.
const DefaultMaxSteps = 3_000_000

// Defaults fills in the settings both simulators default alike: the
// number of replicas (to def when 0), the step limit (DefaultMaxSteps
// when 0) and the logger (one that discards when nil).
func Defaults(replicas *int, def int, maxSteps *uint64, logger **slog.Logger) {
	if *replicas == 0 {
		*replicas = def
	}
	if *maxSteps == 0 {
		*maxSteps = DefaultMaxSteps
	}
	if *logger == nil {
		*logger = slog.New(slog.DiscardHandler)
	}
}

// Progress is what every run counts of itself: Runs (1 for one run's
// counters, the number of runs in a sum), and the steps and virtual
// ticks it ran. Simulators embed it first in their counters.
type Progress struct {
	Runs  uint64 `json:"runs"`
	Steps uint64 `json:"steps"`
	Ticks int64  `json:"ticks"`
}

// OneRun is the Progress of a run before it starts.
var OneRun = Progress{Runs: 1}

// Work is what a run's clients got done: the requests some replica
// committed and the operations the clients completed. Simulators embed
// it last in their counters.
type Work struct {
	CommittedRequests uint64 `json:"committed_requests"`
	Operations        uint64 `json:"operations"`
}

// Summarize adds one run to a summary of runs: it adds the run's
// counters C (a struct of uint64 and int64 fields and structs of them,
// such as Progress and Work) field by field to total, and tallies its
// violations.
func Summarize[C any](total *C, tally *Tally, counters C, seed uint64, vs []Violation) {
	addFields(reflect.ValueOf(total).Elem(), reflect.ValueOf(counters))
	tally.Add(seed, vs)
}

// addFields adds every field of src to the same field of dst. Counters
// are integers: another field kind is a broken invariant of the caller's
// type.
func addFields(dst, src reflect.Value) {
	for i := range dst.NumField() {
		switch f := dst.Field(i); f.Kind() {
		case reflect.Uint64:
			f.SetUint(f.Uint() + src.Field(i).Uint())
		case reflect.Int64:
			f.SetInt(f.Int() + src.Field(i).Int())
		case reflect.Struct:
			addFields(f, src.Field(i))
		default:
			panic(fmt.Sprintf("simkit: counter %s is a %s, not an integer", dst.Type().Field(i).Name, f.Kind()))
		}
	}
}
