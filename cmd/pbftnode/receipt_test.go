package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/receipt"
)

// testnetReceipt writes a testnet into a temporary directory and a
// receipt signed by replicas 0 and 1 of it (f+1 of 4), as
// `client --receipt` would; edit changes it before it is written.
func testnetReceipt(t *testing.T, edit func(*receipt.Receipt)) (clusterPath, receiptPath string) {
	t.Helper()
	dir := t.TempDir()
	cluster, err := config.WriteTestnet(config.Testnet{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	client, raw := []byte("client"), []byte{0x08, 0x01}
	leaves := []crypto.Digest{receipt.LeafHash([]byte("other"), 1, nil), receipt.LeafHash(client, 3, raw)}
	var sigs []receipt.Signature
	var first *receipt.Receipt
	for i := range 2 {
		key, err := keyfile.Read(filepath.Join(dir, fmt.Sprintf("node%d", i), config.DefaultKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		rr := receipt.SignBatch(crypto.NewSigner(key, cluster.ClusterID), 0, 9, crypto.Digest{7}, leaves)[1]
		sigs = append(sigs, receipt.Signature{Replica: uint32(i), Signature: hex.EncodeToString(rr.Signature)})
		first = receipt.Assemble(cluster.ClusterID, client, 3, execution.EncodePut([]byte("a"), []byte("1")), raw, rr, sigs, nil)
	}
	if edit != nil {
		edit(first)
	}
	b, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	receiptPath = filepath.Join(dir, "r.json")
	if err := os.WriteFile(receiptPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "cluster.json"), receiptPath
}

func TestVerifyReceiptCommand(t *testing.T) {
	cases := []struct {
		name string
		edit func(*receipt.Receipt)
		code int
		says string
	}{
		{"genuine", nil, 0, "signers:  replicas 0, 1"},
		{"tampered result", func(r *receipt.Receipt) { r.Result = "o0" }, 1, "tampered result"},
		{"one signature", func(r *receipt.Receipt) { r.Signatures = r.Signatures[:1] }, 1, "too few signers"},
		{"unknown replica", func(r *receipt.Receipt) { r.Signatures[1].Replica = 9 }, 1, "unknown key"},
		{"other cluster", func(r *receipt.Receipt) { r.ClusterID = "elsewhere" }, 1, "wrong cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clusterPath, receiptPath := testnetReceipt(t, tc.edit)
			code, stdout, stderr := cli(t, "verify-receipt", "--cluster", clusterPath, receiptPath)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.says) {
				t.Fatalf("exit %d, want %d saying %q; stdout %q stderr %q", code, tc.code, tc.says, stdout, stderr)
			}
		})
	}
	if code, _, _ := cli(t, "verify-receipt", "r.json"); code != 2 {
		t.Fatalf("verify-receipt without --cluster: exit %d, want 2", code)
	}
}
