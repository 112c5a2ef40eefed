package config

import (
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
)

// TestTestnetWritesClusterFile: DIR/cluster.json is the cluster the
// testnet returns (its id and the replicas' public keys), and
// NoReceipts writes "receipts": false into every replica's home, and
// CheckDirectCommits "check_direct_commits": true.
func TestTestnetWritesClusterFile(t *testing.T) {
	dir := t.TempDir()
	cluster, err := WriteTestnet(Testnet{Dir: dir, NoReceipts: true, CheckDirectCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	var read ClusterFile
	if err := ReadJSON(filepath.Join(dir, "cluster.json"), &read); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(read, cluster) {
		t.Fatalf("cluster.json holds %+v, want %+v", read, cluster)
	}
	if _, err := read.Decode(); err != nil {
		t.Fatalf("cluster.json does not decode: %v", err)
	}
	var fc FileConfig
	if err := ReadJSON(filepath.Join(dir, "node0", FileName), &fc); err != nil {
		t.Fatal(err)
	}
	if fc.Receipts == nil || *fc.Receipts {
		t.Fatalf("node0 receipts %v, want false", fc.Receipts)
	}
	if !fc.CheckDirectCommits {
		t.Fatal("node0 check_direct_commits false, want true")
	}
	if want := CPUShare(4); fc.GOMAXPROCS != want || want < 1 {
		t.Fatalf("node0 gomaxprocs %d, want its share %d", fc.GOMAXPROCS, want)
	}
}

// The replicas of a testnet share the machine's CPUs: each gets its share
// (at least one), or, with Testnet.GOMAXPROCS negative, no setting.
func TestCPUShare(t *testing.T) {
	if got := CPUShare(runtime.NumCPU() * 4); got != 1 {
		t.Fatalf("share of %d processes: %d, want 1", runtime.NumCPU()*4, got)
	}
	if got := CPUShare(1); got != runtime.NumCPU() {
		t.Fatalf("share of one process: %d, want %d", got, runtime.NumCPU())
	}
	dir := t.TempDir()
	if _, err := WriteTestnet(Testnet{Dir: dir, GOMAXPROCS: -1}); err != nil {
		t.Fatal(err)
	}
	var fc FileConfig
	if err := ReadJSON(filepath.Join(dir, "node0", FileName), &fc); err != nil {
		t.Fatal(err)
	}
	if fc.GOMAXPROCS != 0 {
		t.Fatalf("GOMAXPROCS -1 wrote gomaxprocs %d, want none", fc.GOMAXPROCS)
	}
}
