package simtest

import (
	"os"
	"runtime/debug"
	"strconv"
	"testing"
)

// RaceEnabled reports whether this binary was built with -race. The race
// detector slows a simulator about 10x, and the seeds are single-threaded
// runs that share nothing: a race build runs a few of them, enough to
// check the harness, not a campaign.
func RaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// Seeds is how many seeds a test runs: the number in the environment
// variable env when it is set (a long campaign), raced under the race
// detector, short with -short, and normal otherwise.
func Seeds(t *testing.T, env string, normal, raced, short uint64) uint64 {
	t.Helper()
	if s := os.Getenv(env); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, s, err)
		}
		return n
	}
	switch {
	case RaceEnabled():
		return raced
	case testing.Short():
		return short
	}
	return normal
}
