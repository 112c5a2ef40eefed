package main

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/stats"
)

// connWatch is a gRPC stats handler that counts the open connections and
// closes idle once none has been open for the idle period, after the
// first connection (so a server started before its replica waits for it).
// The server's state is in memory and serves one replica: once the
// replica is gone for good, so is the point of the process.
type connWatch struct {
	period time.Duration
	idle   chan struct{}

	mu     sync.Mutex
	open   int
	timer  *time.Timer
	closed bool
}

func newConnWatch(period time.Duration) *connWatch {
	return &connWatch{period: period, idle: make(chan struct{})}
}

func (w *connWatch) HandleConn(_ context.Context, s stats.ConnStats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch s.(type) {
	case *stats.ConnBegin:
		w.open++
		if w.timer != nil {
			w.timer.Stop()
			w.timer = nil
		}
	case *stats.ConnEnd:
		w.open--
		if w.open == 0 && w.timer == nil {
			w.timer = time.AfterFunc(w.period, w.fire)
		}
	}
}

// fire closes idle unless a connection began since the timer was set.
func (w *connWatch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open == 0 && !w.closed {
		w.closed = true
		close(w.idle)
	}
}

func (w *connWatch) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (w *connWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (w *connWatch) HandleRPC(context.Context, stats.RPCStats)                         {}
