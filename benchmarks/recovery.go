package benchmarks

import (
	"context"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// recoveryWindow is the sliding window over which recovery is judged.
const recoveryWindow = time.Second

// RecoveryTime returns how long after stop the honest throughput was back:
// the smallest d >= 0 such that at least need operations completed in
// the window [stop+d, stop+d+1s), among the windows that end by until.
// completed must be sorted. It returns false when no such window exists
// (not recovered by until).
func RecoveryTime(completed []time.Duration, stop, until time.Duration, need int) (time.Duration, bool) {
	countIn := func(from time.Duration) int {
		lo := sort.Search(len(completed), func(i int) bool { return completed[i] >= from })
		hi := sort.Search(len(completed), func(i int) bool { return completed[i] >= from+recoveryWindow })
		return hi - lo
	}
	if need <= 0 {
		return 0, until >= stop
	}
	// The count only rises when the window's end passes a completion, so
	// the first good window starts at stop or just after some c-1s.
	if stop+recoveryWindow <= until && countIn(stop) >= need {
		return 0, true
	}
	for _, c := range completed {
		from := c - recoveryWindow + 1
		if from <= stop {
			continue
		}
		if from+recoveryWindow > until {
			break
		}
		if countIn(from) >= need {
			return from - stop, true
		}
	}
	return 0, false
}

// recoveryNeed is how many operations a 1 s window must hold to count as
// recovered: 0.9 of the baseline throughput.
func recoveryNeed(baselineOps float64) int {
	return int(math.Ceil(0.9 * baselineOps * recoveryWindow.Seconds()))
}

// MaxRSSGrowthMiB returns the largest growth over any replica of its
// resident memory: the highest of its samples minus its base, in MiB (0
// when nothing grew). Replicas without a base are skipped.
func MaxRSSGrowthMiB(base map[int]uint64, samples map[int][]uint64) float64 {
	var most float64
	for i, ss := range samples {
		b, ok := base[i]
		if !ok || len(ss) == 0 {
			continue
		}
		peak := slices.Max(ss)
		if peak > b {
			most = max(most, float64(peak-b)/(1<<20))
		}
	}
	return most
}

// rssSampler reads every replica's resident memory every period until
// stopped.
type rssSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples map[int][]uint64
}

// sampleRSS returns every running replica's resident memory now.
func sampleRSS(cl *cluster) map[int]uint64 {
	out := make(map[int]uint64)
	for _, i := range cl.running() {
		if v, err := residentBytes(cl.pid(i)); err == nil {
			out[i] = v
		}
	}
	return out
}

func startRSSSampler(cl *cluster, period time.Duration) *rssSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &rssSampler{cancel: cancel, done: make(chan struct{}), samples: make(map[int][]uint64)}
	go func() {
		defer close(s.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			now := sampleRSS(cl)
			s.mu.Lock()
			for i, v := range now {
				s.samples[i] = append(s.samples[i], v)
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the samples.
func (s *rssSampler) stop() map[int][]uint64 {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}
