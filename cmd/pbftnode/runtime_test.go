package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/pbftnode/pbftnode/config"
)

// TestRuntimeSettings: config.json's gc_percent, memory_limit_mib and
// gomaxprocs set the runtime; unset, the runtime's own settings stand.
func TestRuntimeSettings(t *testing.T) {
	prevGC := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	})
	logger := slog.New(slog.DiscardHandler)

	prevProcs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prevProcs) })
	applyRuntimeSettings(config.FileConfig{GCPercent: 250, MemoryLimitMiB: 64, GOMAXPROCS: prevProcs + 1}, logger)
	if gc, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); gc != 250 || limit != 64<<20 {
		t.Fatalf("configured: gc %d, limit %d; want 250 and %d", gc, limit, 64<<20)
	}
	if procs := runtime.GOMAXPROCS(0); procs != prevProcs+1 {
		t.Fatalf("configured: GOMAXPROCS %d, want %d", procs, prevProcs+1)
	}

	debug.SetGCPercent(130)
	debug.SetMemoryLimit(prevLimit)
	applyRuntimeSettings(config.FileConfig{}, logger)
	if gc, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); gc != 130 || limit != prevLimit {
		t.Fatalf("unset: gc %d, limit %d; want the runtime's 130 and %d", gc, limit, prevLimit)
	}
	if procs := runtime.GOMAXPROCS(0); procs != prevProcs+1 {
		t.Fatalf("unset: GOMAXPROCS %d, want the runtime's %d", procs, prevProcs+1)
	}
}
