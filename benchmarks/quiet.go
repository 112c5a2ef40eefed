package benchmarks

import (
	"context"
	"time"
)

// quietThreshold is the machine load, in busy cores, below which the
// machine counts as quiet before a configuration starts.
const quietThreshold = 0.25

// waitQuiet waits, for at most maxWait, until the machine is quiet: busy
// less than quietThreshold cores over a one-second sample, while this
// configuration runs nothing yet. It returns how long it waited and the
// last load it saw. On a shared machine this keeps another job's burst
// out of the measurement where it can; the run goes ahead anyway after
// maxWait (its background_cpu_cores then shows the contention).
func waitQuiet(ctx context.Context, maxWait time.Duration, prog progress) (time.Duration, float64, error) {
	start := time.Now()
	said := false
	for {
		before, err := machineBusySeconds()
		if err != nil {
			return 0, 0, nil // no /proc/stat: nothing to wait for
		}
		harness := selfCPUSeconds()
		if err := sleepUntil(ctx, time.Now().Add(time.Second)); err != nil {
			return time.Since(start), 0, err
		}
		after, err := machineBusySeconds()
		if err != nil {
			return time.Since(start), 0, nil
		}
		load := max(0, after-before-(selfCPUSeconds()-harness))
		waited := time.Since(start)
		if load < quietThreshold || waited >= maxWait {
			if said {
				prog.say("machine load %.2f cores after waiting %.0fs", load, waited.Seconds())
			}
			return waited, load, nil
		}
		if !said {
			prog.say("machine busy with other work (%.2f cores); waiting up to %v for it to settle", load, maxWait)
			said = true
		}
	}
}
