package main

import (
	"strings"
	"testing"
)

// The attack command refuses bad invocations as usage errors (exit 2)
// before it connects to anything.
func TestAttackRejectsBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"attack", "--kind", "garbage-client"}, "--dir is required"},
		{[]string{"attack", "--dir", dir, "--kind", "meteor"}, "kind"},
		{[]string{"attack", "--dir", dir, "--kind", "slowloris", "--rate", "-1"}, "negative rate"},
		{[]string{"attack", "--dir", dir, "extra"}, "unexpected arguments"},
	} {
		code, _, stderr := cli(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}

// Replica attacks need PBFT; the attack scenarios are listed.
func TestBenchAttackScenarios(t *testing.T) {
	code, _, stderr := cli(t, "bench", "--protocol", "raft", "--scenario", "slow-primary")
	if code != 2 || !strings.Contains(stderr, "needs --protocol pbft") {
		t.Errorf("raft slow-primary: exit %d, stderr %q; want a usage error", code, stderr)
	}
	_, _, stderr = cli(t, "bench", "-h")
	for _, s := range []string{"big-burst", "client-flood", "garbage-client", "bad-signature-replica", "stale-flood-replica",
		"batch-request-flood", "slow-primary", "slowloris", "non-reading-client"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("bench -h does not list scenario %q", s)
		}
	}
}
