package benchmarks

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress writes what a run is doing to w (nil: nothing).
type progress struct {
	w     io.Writer
	label string
}

// say writes one line about a step of the run.
func (p progress) say(format string, args ...any) {
	if p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "bench [%s] %s\n", p.label, fmt.Sprintf(format, args...))
}

// follow writes a line every second while the load runs: elapsed time,
// operations completed and the rate over the last second. stop ends it
// (and may be called more than once).
func (p progress) follow(rec *recorder, start time.Time) (stop func()) {
	if p.w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		last, lastAt := 0, start
		for {
			select {
			case <-done:
				return
			case now := <-ticker.C:
				n := rec.count()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				p.say("%5.1fs %9d ops %8.0f ops/s", now.Sub(start).Seconds(), n, rate)
				last, lastAt = n, now
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}
