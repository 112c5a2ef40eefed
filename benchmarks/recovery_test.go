package benchmarks

import (
	"os"
	"testing"
	"time"
)

// evenly returns completion times at rate per second over [from, to).
func evenly(from, to time.Duration, rate int) []time.Duration {
	var out []time.Duration
	step := time.Second / time.Duration(rate)
	for t := from; t < to; t += step {
		out = append(out, t)
	}
	return out
}

func TestRecoveryTime(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name      string
		completed []time.Duration
		need      int
		want      time.Duration
		wantOK    bool
	}{
		// Never hurt: the window starting at the stop already holds 0.9
		// of the baseline.
		{"unhurt", evenly(0, 20*s, 1000), 900, 0, true},
		// Nothing for 3 s after the stop, then full speed (one completion
		// a millisecond from 13 s): the first window holding 900 starts
		// just after 12.899 s, so that its end passes the 900th, 13.899 s.
		{"outage", append(evenly(0, 10*s, 1000), evenly(13*s, 20*s, 1000)...), 900, 2899*time.Millisecond + 1, true},
		// Back at half speed only: never 0.9 of the baseline.
		{"half", append(evenly(0, 10*s, 1000), evenly(10*s, 20*s, 500)...), 900, 0, false},
		// No completion at all after the stop.
		{"dead", evenly(0, 10*s, 1000), 900, 0, false},
	} {
		got, ok := RecoveryTime(tc.completed, 10*s, 20*s, tc.need)
		if ok != tc.wantOK || (ok && got != tc.want) {
			t.Errorf("%s: RecoveryTime = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

// A window must lie within the watched interval: completions after until
// do not count.
func TestRecoveryTimeIgnoresLaterCompletions(t *testing.T) {
	completed := evenly(12*time.Second, 20*time.Second, 1000)
	if got, ok := RecoveryTime(completed, 10*time.Second, 12500*time.Millisecond, 900); ok {
		t.Errorf("RecoveryTime = %v, true; want not recovered by 12.5 s (the first good window ends after it)", got)
	}
}

func TestRecoveryNeed(t *testing.T) {
	if got := recoveryNeed(1000); got != 900 {
		t.Errorf("recoveryNeed(1000) = %d, want 900", got)
	}
	if got := recoveryNeed(7183.4); got != 6466 {
		t.Errorf("recoveryNeed(7183.4) = %d, want 6466 (rounded up)", got)
	}
}

func TestMaxRSSGrowthMiB(t *testing.T) {
	const mib = 1 << 20
	base := map[int]uint64{0: 100 * mib, 1: 100 * mib, 2: 300 * mib}
	samples := map[int][]uint64{
		0: {100 * mib, 150 * mib, 120 * mib}, // +50
		1: {90 * mib, 95 * mib},              // shrank: 0
		2: {301 * mib, 420 * mib, 310 * mib}, // +120 at its peak, the most
		3: {900 * mib},                       // no base: skipped
	}
	if got := MaxRSSGrowthMiB(base, samples); got != 120 {
		t.Errorf("MaxRSSGrowthMiB = %v, want 120", got)
	}
	if got := MaxRSSGrowthMiB(base, map[int][]uint64{1: {50 * mib}}); got != 0 {
		t.Errorf("MaxRSSGrowthMiB of a shrinking replica = %v, want 0", got)
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tpbftnode\nVmPeak:\t 2000000 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 100 kB\n"
	got, err := parseVmRSS(status)
	if err != nil || got != 123456<<10 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 123456<<10)
	}
	if _, err := parseVmRSS("Name:\tx\n"); err == nil {
		t.Error("parseVmRSS without a VmRSS line: no error")
	}
	if _, err := parseVmRSS("VmRSS:\t12 MB\n"); err == nil {
		t.Error("parseVmRSS with an unknown unit: no error")
	}
}

// The harness's own process has a resident set.
func TestResidentBytesOfSelf(t *testing.T) {
	v, err := residentBytes(selfPID())
	if err != nil || v == 0 {
		t.Errorf("residentBytes(self) = %d, %v; want > 0", v, err)
	}
}

func selfPID() int { return os.Getpid() }
