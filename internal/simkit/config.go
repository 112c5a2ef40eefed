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

// Summarize adds one run to a summary of runs: it counts the run, adds
// its counters C (a struct of uint64 and int64 fields) field by field to
// total, and tallies its violations.
func Summarize[C any](runs *uint64, total *C, tally *Tally, seed uint64, counters C, vs []Violation) {
	*runs++
	addCounters(total, counters)
	tally.Add(seed, vs)
}

// addCounters adds every field of src to the same field of *dst. Counters
// are integers: another field kind is a broken invariant of the caller's
// type.
func addCounters[C any](dst *C, src C) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := range d.NumField() {
		switch f := d.Field(i); f.Kind() {
		case reflect.Uint64:
			f.SetUint(f.Uint() + s.Field(i).Uint())
		case reflect.Int64:
			f.SetInt(f.Int() + s.Field(i).Int())
		default:
			panic(fmt.Sprintf("simkit: counter %s is a %s, not an integer", d.Type().Field(i).Name, f.Kind()))
		}
	}
}
