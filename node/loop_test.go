package node

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A loop whose iterations take longer than a tick (a slow fsync in
// Process) still delivers about one tick per TickInterval of wall-clock
// time: time.Ticker drops the ticks a slow receiver misses, and Run
// delivers them late instead of losing them (a view-change timeout
// counted in ticks would otherwise stretch with the load).
func TestEventLoopDeliversTheTicksASlowIterationMissed(t *testing.T) {
	const interval = time.Millisecond
	var ticks, processed atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		EventLoop[int]{
			TickInterval: interval,
			Inbox:        make(chan int),
			Tick:         func() { ticks.Add(1) },
			Handle:       func(int) {},
			Process: func() error {
				time.Sleep(20 * interval) // each iteration misses about 20 ticks
				if processed.Add(1) == 20 {
					cancel()
				}
				return nil
			},
			Processed: func() {},
			Metrics:   &Metrics{InboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_inbox_depth"})},
			Log:       slog.New(slog.DiscardHandler),
		}.Run(ctx)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the loop did not stop")
	}
	elapsed := time.Since(start)
	// At least half the ticks the elapsed time holds (the last iteration's
	// are not yet due); without catching up, about one per iteration.
	if want := int64(elapsed/interval) / 2; ticks.Load() < want {
		t.Fatalf("%d ticks in %v (%d iterations); want at least %d", ticks.Load(), elapsed, processed.Load(), want)
	}
}
