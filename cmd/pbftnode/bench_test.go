package main

import (
	"strings"
	"testing"
)

// The bench command refuses bad configurations as usage errors (exit 2)
// before it measures or starts anything.
func TestBenchRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--protocol", "paxos"}, "protocol"},
		{[]string{"bench", "--protocol", "raft", "--scenario", "byzantine"}, "crash faults only"},
		{[]string{"bench", "--payload", "100"}, "payload"},
		{[]string{"bench", "--scenario", "meteor"}, "scenario"},
		{[]string{"bench", "--window", "65"}, "window"},
		{[]string{"bench", "--replicas", "3"}, "at least 4"},
		{[]string{"bench", "extra"}, "unexpected arguments"},
		{[]string{"bench", "--app", "bank"}, `app "bank"`},
		{[]string{"bench", "--app", "ledger", "--protocol", "floor"}, "executes nothing"},
		{[]string{"bench", "--app", "ledger", "--compare"}, "--compare measures the key-value store"},
		{[]string{"bench", "--peer", "zookeeper"}, `peer "zookeeper"`},
		// --duration -1s: were the check missing, these would fail fast on
		// the duration instead of running a benchmark.
		{[]string{"bench", "--peer", "etcd", "--protocol", "raft", "--duration", "-1s"}, "drop --protocol"},
		{[]string{"bench", "--peer", "etcd", "--compare", "--duration", "-1s"}, "--compare runs the peers"},
		{[]string{"bench", "--peer", "cometbft", "--unsafe-no-fsync"}, "CometBFT has no switch"},
		{[]string{"bench", "--peer", "etcd", "--scenario", "crash-leader"}, "without faults"},
	} {
		code, _, stderr := cli(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestBenchListedInUsage(t *testing.T) {
	_, stdout, _ := cli(t, "help") // asked-for help goes to stdout
	if !strings.Contains(stdout, "bench") {
		t.Errorf("usage does not list bench:\n%s", stdout)
	}
}
