package receipt

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
)

// testCluster is a cluster of n replicas with deterministic keys.
func testCluster(t *testing.T, id string, n int, seed byte) (config.ClusterFile, []*crypto.Signer) {
	t.Helper()
	cf := config.ClusterFile{ClusterID: id}
	var signers []*crypto.Signer
	for i := range n {
		var s [ed25519.SeedSize]byte
		s[0], s[1] = seed, byte(i)
		key := ed25519.NewKeyFromSeed(s[:])
		signers = append(signers, crypto.NewSigner(key, id))
		cf.Replicas = append(cf.Replicas, config.ReplicaRecord{
			Index: uint32(i), PublicKey: hex.EncodeToString(key.Public().(ed25519.PublicKey)),
			Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 20000+i),
		})
	}
	return cf, signers
}

// genuine returns a receipt for leaf 2 of a 5-request batch signed by
// replicas 0 and 1 of cf (f+1 of 4), as a client assembles it.
func genuine(t *testing.T, cf config.ClusterFile, signers []*crypto.Signer) *Receipt {
	t.Helper()
	op := execution.EncodePut([]byte("a"), []byte("1"))
	raw := []byte{0x08, 0x01} // KVResult{ok: true}
	client := []byte("client-2")
	leaves := testLeaves(5)
	leaves[2] = LeafHash(client, 7, raw)
	var state crypto.Digest
	state[0] = 9
	var sigs []Signature
	var first = SignBatch(signers[0], 0, 42, state, leaves)[2]
	for i, s := range signers[:2] {
		rr := SignBatch(s, 0, 42, state, leaves)[2]
		if _, err := VerifyReply(s.Public(), cf.ClusterID, client, 7, raw, rr); err != nil {
			t.Fatalf("replica %d's reply receipt: %v", i, err)
		}
		sigs = append(sigs, Signature{Replica: uint32(i), PublicKey: hex.EncodeToString(s.Public()), Signature: hex.EncodeToString(rr.Signature)})
	}
	r := Assemble(cf.ClusterID, client, 7, op, raw, first, sigs, nil)
	if r.Result != "ok" || r.Operation != "put" {
		t.Fatalf("assembled result %q, operation %q; want ok, put", r.Result, r.Operation)
	}
	return r
}

func TestGenuineReceiptVerifies(t *testing.T) {
	cf, signers := testCluster(t, "c1", 4, 1)
	if err := Verify(genuine(t, cf, signers), cf); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestForgedReceiptsAreRejected(t *testing.T) {
	cf, signers := testCluster(t, "c1", 4, 1)
	otherCluster, otherSigners := testCluster(t, "c2", 4, 2)
	cases := []struct {
		name   string
		edit   func(r *Receipt)
		cf     config.ClusterFile
		reason error
	}{
		{"result byte changed", func(r *Receipt) { r.Result = "o0" }, cf, ErrTamperedResult},
		{"raw result changed", func(r *Receipt) {
			r.RawResult = "0800" // KVResult{ok: false}, reprinted to match
			r.Result = FormatResult(r.Operation, []byte{0x08, 0x00})
		}, cf, ErrBadProof},
		{"operation relabelled without its result", func(r *Receipt) { r.Operation = "get" }, cf, ErrTamperedResult},
		{"request number changed", func(r *Receipt) { r.RequestNumber++ }, cf, ErrBadProof},
		{"client changed", func(r *Receipt) { r.ClientID = hex.EncodeToString([]byte("client-3")) }, cf, ErrBadProof},
		{"leaf index changed", func(r *Receipt) { r.LeafIndex++ }, cf, ErrBadProof},
		{"leaf count changed", func(r *Receipt) { r.LeafCount = 9 }, cf, ErrBadProof},
		{"proof entry dropped", func(r *Receipt) { r.Proof = r.Proof[1:] }, cf, ErrBadProof},
		{"sequence changed", func(r *Receipt) { r.Sequence++ }, cf, ErrBadSignature},
		{"state digest changed", func(r *Receipt) { r.StateDigest = "00" + r.StateDigest[2:] }, cf, ErrBadSignature},
		{"signature removed below f+1", func(r *Receipt) { r.Signatures = r.Signatures[:1] }, cf, ErrTooFewSigners},
		{"duplicate signer counted once", func(r *Receipt) { r.Signatures[1] = r.Signatures[0] }, cf, ErrTooFewSigners},
		{"signer not in the cluster", func(r *Receipt) { r.Signatures[1].Replica = 7 }, cf, ErrUnknownKey},
		{"key not the replica's", func(r *Receipt) {
			r.Signatures[1].PublicKey = hex.EncodeToString(otherSigners[1].Public())
		}, cf, ErrUnknownKey},
		{"signature by another replica's key", func(r *Receipt) { r.Signatures[1].Replica = 2; r.Signatures[1].PublicKey = "" }, cf, ErrBadSignature},
		{"signature bytes flipped", func(r *Receipt) { r.Signatures[1].Signature = "00" + r.Signatures[1].Signature[2:] }, cf, ErrBadSignature},
		{"other cluster", func(*Receipt) {}, otherCluster, ErrWrongCluster},
		{"other cluster's id claimed", func(r *Receipt) {
			r.ClusterID = "c2"
			for i := range r.Signatures {
				r.Signatures[i].PublicKey = ""
			}
		}, otherCluster, ErrBadSignature},
		{"other cluster's id and keys", func(r *Receipt) { r.ClusterID = "c2" }, otherCluster, ErrUnknownKey},
		{"malformed digest", func(r *Receipt) { r.ResultsRoot = "zz" }, cf, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := genuine(t, cf, signers)
			tc.edit(r)
			if err := Verify(r, tc.cf); !errors.Is(err, tc.reason) {
				t.Fatalf("Verify: %v, want %v", err, tc.reason)
			}
		})
	}
}

func TestFormatResult(t *testing.T) {
	cases := []struct {
		op   string
		raw  []byte
		want string
	}{
		{"put", []byte{0x08, 0x01}, "ok"},
		{"delete", []byte{0x08, 0x01}, "ok"},
		{"get", []byte{0x08, 0x01, 0x12, 0x01, 'v'}, "v"},
		{"get", nil, "(not found)"},
		{"cas", []byte{0x08, 0x01}, "swapped"},
		{"cas", nil, "not swapped (key absent)"},
		{"cas", []byte{0x12, 0x01, 'v'}, "not swapped (current value v)"},
		{"", []byte{0xab}, "hex:ab"},
		{"put", []byte{0xff}, "hex:ff"}, // no KVResult
	}
	for _, tc := range cases {
		if got := FormatResult(tc.op, tc.raw); got != tc.want {
			t.Errorf("FormatResult(%q, %x) = %q, want %q", tc.op, tc.raw, got, tc.want)
		}
	}
}
