package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/pbftnode/pbftnode/config"
)

// applyRuntimeSettings sets the Go runtime's collector target, soft
// memory limit and GOMAXPROCS from the replica's configuration
// (config.FileConfig's GCPercent, MemoryLimitMiB and GOMAXPROCS). A
// setting left at zero leaves the runtime's own (Go's defaults, or GOGC,
// GOMEMLIMIT and GOMAXPROCS from the environment). Replicas keep Go's
// default target unless configured: a higher one buys some CPU under load
// with memory that attacks then multiply (docs/benchmarks.md, "Memory and
// the collector"). It runs before the replica starts, so the verification
// pool sizes itself to the GOMAXPROCS set here.
func applyRuntimeSettings(fc config.FileConfig, logger *slog.Logger) {
	if fc.GCPercent != 0 {
		debug.SetGCPercent(fc.GCPercent)
	}
	if fc.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(fc.MemoryLimitMiB) << 20)
	}
	if fc.GOMAXPROCS > 0 {
		runtime.GOMAXPROCS(fc.GOMAXPROCS)
	}
	logger.Debug("go runtime", "gc_percent", fc.GCPercent, "memory_limit_mib", fc.MemoryLimitMiB, "gomaxprocs", runtime.GOMAXPROCS(0))
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
