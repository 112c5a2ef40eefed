package config

import (
	"flag"
	"io"
	"reflect"
	"slices"
	"testing"
)

func TestEveryReplicaSettingHasAFlagThatOverridesTheFile(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := RegisterFlags(fs)
	var want []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[FileConfig]()) {
		if name, ok := jsonName(f); ok && !clusterWide[name] {
			want = append(want, name)
		}
	}
	got := flags.Names()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("flags for %v, settings %v", got, want)
	}
	err := fs.Parse([]string{"--metrics-listen", "127.0.0.1:9", "--unsafe-no-fsync", "--max-batch-size", "7",
		"--client-rate-limit", "2.5", "--client-allowlist", "aa, bb", "--raft-snapshot-interval", "64"})
	if err != nil {
		t.Fatal(err)
	}
	fc := FileConfig{MetricsListen: "from-file", MaxInFlight: 3}
	if err := flags.Apply(&fc); err != nil {
		t.Fatal(err)
	}
	if fc.MetricsListen != "127.0.0.1:9" || !fc.UnsafeNoFsync || fc.MaxBatchSize != 7 || fc.ClientRateLimit != 2.5 ||
		!slices.Equal(fc.ClientAllowlist, []string{"aa", "bb"}) || fc.RaftSnapshotInterval != 64 {
		t.Fatalf("overrides not applied: %+v", fc)
	}
	if fc.MaxInFlight != 3 {
		t.Fatalf("a setting without a flag given changed: max_in_flight %d", fc.MaxInFlight)
	}
	if err := fs.Parse([]string{"--max-batch-size", "many"}); err == nil {
		t.Fatal("a malformed value was accepted")
	}
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}
