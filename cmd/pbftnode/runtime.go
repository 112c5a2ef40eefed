package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/pbftnode/pbftnode/config"
)

// applyRuntimeSettings sets the Go runtime's collector target and soft
// memory limit from the replica's configuration (config.FileConfig's
// GCPercent and MemoryLimitMiB). A setting left at zero leaves the
// runtime's own (Go's defaults, or GOGC and GOMEMLIMIT from the
// environment). Replicas keep Go's default target unless configured: a
// higher one buys some CPU under load with memory that attacks then
// multiply (docs/benchmarks.md, "Memory and the collector").
func applyRuntimeSettings(fc config.FileConfig, logger *slog.Logger) {
	if fc.GCPercent != 0 {
		debug.SetGCPercent(fc.GCPercent)
	}
	if fc.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(fc.MemoryLimitMiB) << 20)
	}
	logger.Debug("go runtime", "gc_percent", fc.GCPercent, "memory_limit_mib", fc.MemoryLimitMiB)
}

// benchGCPercent is the collector target of bench's load generator unless
// GOGC sets one: it shares the two cores with every system it drives,
// peers included, and allocates fast.
const benchGCPercent = 400

// applyBenchRuntimeSettings sets the load generator's collector target.
func applyBenchRuntimeSettings() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(benchGCPercent)
	}
}
