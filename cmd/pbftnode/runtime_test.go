package main

import (
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/pbftnode/pbftnode/config"
)

// TestRuntimeSettings: config.json's gc_percent and memory_limit_mib set
// the collector; unset, the runtime's own settings stand.
func TestRuntimeSettings(t *testing.T) {
	prevGC := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	})
	logger := slog.New(slog.DiscardHandler)

	applyRuntimeSettings(config.FileConfig{GCPercent: 250, MemoryLimitMiB: 64}, logger)
	if gc, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); gc != 250 || limit != 64<<20 {
		t.Fatalf("configured: gc %d, limit %d; want 250 and %d", gc, limit, 64<<20)
	}

	debug.SetGCPercent(130)
	debug.SetMemoryLimit(prevLimit)
	applyRuntimeSettings(config.FileConfig{}, logger)
	if gc, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); gc != 130 || limit != prevLimit {
		t.Fatalf("unset: gc %d, limit %d; want the runtime's 130 and %d", gc, limit, prevLimit)
	}
}
