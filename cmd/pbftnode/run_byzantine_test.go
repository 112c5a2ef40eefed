package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/protocol"
)

func TestRunByzantineFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--home", t.TempDir(), "--byzantine-toggle"}, "--byzantine-toggle needs --byzantine"},
		{[]string{"run", "--home", t.TempDir(), "--byzantine", "stale-flood", "--byzantine-rate", "0"}, "--byzantine-rate must be positive"},
	} {
		code, _, stderr := cli(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestRunByzantineRateAndDelay: the rate in frames per second becomes
// frames per tick, slow-primary's delay 90% of the configured timeout,
// and --byzantine-toggle starts the strategy inactive.
func TestRunByzantineRateAndDelay(t *testing.T) {
	seed := sha256.Sum256([]byte("run-byzantine"))
	cfg := node.Config{Index: 1, Key: ed25519.NewKeyFromSeed(seed[:]), ClusterID: "c", Replicas: make([]node.Replica, 4)}
	cfg.PBFT.ViewChangeTimeoutTicks = 200
	f, err := newByzantine(cfg, byzantine.StrategyBadSignatureFlood, 500, true)
	if err != nil {
		t.Fatal(err)
	}
	if f.Active() {
		t.Fatal("--byzantine-toggle started the strategy active")
	}
	f.SetActive(true)
	if got := len(f.Inject(1, statusForTest())) + len(f.Inject(2, statusForTest())); got != 10 {
		t.Fatalf("500 frames/s at a 10 ms tick: %d frames in 2 ticks, want 10", got)
	}
	slow, err := newByzantine(cfg, byzantine.StrategySlowPrimary, 500, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slow.Active() {
		t.Fatal("without --byzantine-toggle the strategy is inactive")
	}
	if d := slow.Delay(protocol.Outbound{Kind: protocol.KindPrePrepare}); d != 180 {
		t.Fatalf("slow-primary holds PRE-PREPAREs %d ticks with a 200-tick timeout, want 180", d)
	}
	if _, err := newByzantine(cfg, "frob", 1, false); err == nil {
		t.Fatal("an unknown strategy was accepted")
	}
}

// TestRunByzantineToggleSignals: SIGUSR1 switches the strategy on,
// SIGUSR2 off.
func TestRunByzantineToggleSignals(t *testing.T) {
	seed := sha256.Sum256([]byte("run-byzantine-signals"))
	f, err := byzantine.NewWithOptions(byzantine.StrategyStaleFlood, 0, 4, ed25519.NewKeyFromSeed(seed[:]), "c", byzantine.Options{Inactive: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := toggleOnSignals(f, slog.New(slog.DiscardHandler))
	defer stop()
	for _, step := range []struct {
		sig  syscall.Signal
		want bool
	}{{syscall.SIGUSR1, true}, {syscall.SIGUSR2, false}, {syscall.SIGUSR1, true}} {
		if err := syscall.Kill(syscall.Getpid(), step.sig); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for f.Active() != step.want {
			if time.Now().After(deadline) {
				t.Fatalf("after %v the strategy is active=%v, want %v", step.sig, f.Active(), step.want)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func statusForTest() protocol.Status {
	return protocol.Status{ID: 1, View: 2, Primary: 2, LowWatermark: 0, HighWatermark: 200, ViewActive: true}
}
