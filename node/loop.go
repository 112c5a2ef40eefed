package node

import (
	"context"
	"log/slog"
	"time"
)

// MaxBurst bounds how many inputs an event loop takes before its driver
// handles the core's output, so one fsync covers a burst without starving
// the network.
const MaxBurst = 256

// EventLoop is the shape of a runtime's event loop: the one goroutine
// that owns the runtime's driver (and through it the core and the
// executor). Run feeds the driver a tick every TickInterval, or a burst
// of up to MaxBurst inputs from Inbox, and after each calls Process, then
// Processed; an error from Process stops the loop (logged: the replica
// can no longer make progress safely).
type EventLoop[T any] struct {
	TickInterval time.Duration
	Inbox        chan T
	// Tick advances the driver's logical clock by one tick.
	Tick func()
	// Handle hands the driver one input.
	Handle func(T)
	// Process has the driver handle what the core produced.
	Process func() error
	// Processed runs after each Process that succeeded (status, metrics).
	Processed func()
	Metrics   *Metrics
	Log       *slog.Logger
}

// Run runs the loop until ctx ends or Process fails.
func (l EventLoop[T]) Run(ctx context.Context) {
	ticker := time.NewTicker(l.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			l.Tick()
		case in := <-l.Inbox:
			l.Handle(in)
		burst:
			for i := 1; i < MaxBurst; i++ {
				select {
				case in = <-l.Inbox:
					l.Handle(in)
				default:
					break burst
				}
			}
		}
		if err := l.Process(); err != nil {
			l.Log.Error("replica stopped: storage or execution failed", "err", err)
			return
		}
		l.Processed()
		l.Metrics.InboxDepth.Set(float64(len(l.Inbox)))
	}
}

// Push queues in for an event loop without blocking: it reports false,
// for the caller to count a drop, when inbox is full (true once queued or
// ctx has ended).
func Push[T any](ctx context.Context, inbox chan<- T, in T) bool {
	select {
	case inbox <- in:
	case <-ctx.Done():
	default:
		return false
	}
	return true
}
