package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/stats"
)

func TestConnWatchExitsOnlyWhenNoReplicaIsConnected(t *testing.T) {
	w := newConnWatch(time.Hour)
	ctx := context.Background()
	// Before any connection the timer is not even set.
	if w.timer != nil {
		t.Fatal("idle timer set before the first connection")
	}
	w.HandleConn(ctx, &stats.ConnBegin{})
	w.HandleConn(ctx, &stats.ConnEnd{})
	if w.timer == nil {
		t.Fatal("no idle timer once the last connection ended")
	}
	// The replica reconnects before the period ends: a late timer
	// firing changes nothing.
	w.HandleConn(ctx, &stats.ConnBegin{})
	w.fire()
	select {
	case <-w.idle:
		t.Fatal("idle while a replica is connected")
	default:
	}
	w.HandleConn(ctx, &stats.ConnEnd{})
	w.fire()
	select {
	case <-w.idle:
	default:
		t.Fatal("not idle after the last connection ended and the period passed")
	}
	w.fire() // a second firing does not close twice
}

func TestConnWatchTimerFires(t *testing.T) {
	w := newConnWatch(10 * time.Millisecond)
	w.HandleConn(context.Background(), &stats.ConnBegin{})
	w.HandleConn(context.Background(), &stats.ConnEnd{})
	select {
	case <-w.idle:
	case <-time.After(30 * time.Second):
		t.Fatal("idle never closed")
	}
}
