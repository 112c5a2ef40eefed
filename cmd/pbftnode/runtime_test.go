package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"testing"

	"github.com/pbftnode/pbftnode/config"
)

// TestRuntimeSettings: config.json's gc_percent and memory_limit_mib set
// the collector; unset, GOGC stands when the environment has it, else
// defaultGCPercent.
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
	debug.SetMemoryLimit(prevLimit)

	t.Setenv("GOGC", "") // restored after the test
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	debug.SetGCPercent(100)
	applyRuntimeSettings(config.FileConfig{}, logger)
	if gc := debug.SetGCPercent(-1); gc != defaultGCPercent {
		t.Fatalf("unset: gc %d, want the default %d", gc, defaultGCPercent)
	}

	// GOGC was read at start: the test stands for it with the current value.
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	applyRuntimeSettings(config.FileConfig{}, logger)
	if gc := debug.SetGCPercent(-1); gc != 150 {
		t.Fatalf("GOGC=150 in the environment: gc %d", gc)
	}
}
