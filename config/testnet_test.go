package config

import (
	"path/filepath"
	"reflect"
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
}
