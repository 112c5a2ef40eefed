package crypto_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

// bundleClient is a client key and id for the bundle tests.
func bundleClient(t *testing.T, seed int64) (*crypto.Signer, []byte) {
	t.Helper()
	s := crypto.NewSigner(cryptotest.Key(t, seed), testCluster)
	id, err := crypto.ClientID(s.Public(), []byte("session"))
	if err != nil {
		t.Fatal(err)
	}
	return s, id
}

func bundlePayloads(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("request %d", i))
	}
	return out
}

// checkVerifies reports whether sig, as the signature field of payload of
// client id, verifies under pub.
func checkVerifies(pub ed25519.PublicKey, id, payload, sig []byte) bool {
	c, err := crypto.CheckOfRequest(id, payload, sig)
	return err == nil && crypto.Verify(pub, testCluster, c.Domain, c.Payload, c.Signature)
}

// TestSignRequestsVerify: every request of every bundle size verifies on
// its own; one request gets a plain signature; above MaxBundle the
// requests are split into bundles with a signature each.
func TestSignRequestsVerify(t *testing.T) {
	s, id := bundleClient(t, 1)
	for _, n := range []int{1, 2, 3, 7, 8, 33, crypto.MaxBundle, crypto.MaxBundle + 1, 2*crypto.MaxBundle + 5} {
		payloads := bundlePayloads(n)
		sigs := crypto.SignRequests(s, id, payloads)
		if len(sigs) != n {
			t.Fatalf("n=%d: %d signatures", n, len(sigs))
		}
		distinct := map[string]bool{}
		for i, sig := range sigs {
			if !checkVerifies(s.Public(), id, payloads[i], sig) {
				t.Fatalf("n=%d: request %d does not verify", n, i)
			}
			distinct[string(sig[:ed25519.SignatureSize])] = true
		}
		if n == 1 && !bytes.Equal(sigs[0], s.Sign(crypto.DomainClientRequest, payloads[0])) {
			t.Fatal("one request: not its plain signature")
		}
		if want := (n + crypto.MaxBundle - 1) / crypto.MaxBundle; n > 1 && len(distinct) != want {
			t.Fatalf("n=%d: %d Ed25519 signatures, want %d", n, len(distinct), want)
		}
	}
}

// TestBundleSignaturesBindTheRequest: a bundle's signature and proof vouch
// for exactly the payload they were made for, of the client that made
// them.
func TestBundleSignaturesBindTheRequest(t *testing.T) {
	s, id := bundleClient(t, 1)
	other, otherID := bundleClient(t, 2)
	payloads := bundlePayloads(5)
	sigs := crypto.SignRequests(s, id, payloads)
	for i, sig := range sigs {
		// Another member's payload with this member's signature field.
		if checkVerifies(s.Public(), id, payloads[(i+1)%5], sig) {
			t.Fatalf("member %d's signature vouches for member %d", i, (i+1)%5)
		}
		// The same payload claimed by another client.
		if checkVerifies(other.Public(), otherID, payloads[i], sig) {
			t.Fatalf("member %d: the bundle vouches for another client", i)
		}
		// A flipped bit anywhere in the signature field.
		for b := range sig {
			bad := bytes.Clone(sig)
			bad[b] ^= 1
			if checkVerifies(s.Public(), id, payloads[i], bad) {
				t.Fatalf("member %d: bit flipped in byte %d still verifies", i, b)
			}
		}
	}
	// Same-session statements of two clients differ.
	root := crypto.BundleLeaf([]byte("x"))
	if bytes.Equal(crypto.BundleStatement(id, 2, root), crypto.BundleStatement(otherID, 2, root)) {
		t.Fatal("bundle statements do not name the client")
	}
}

// TestMalformedBundleSignatures are refused before any Ed25519 check, with
// ErrBadRequestSignature.
func TestMalformedBundleSignatures(t *testing.T) {
	s, id := bundleClient(t, 1)
	payloads := bundlePayloads(6)
	sig := crypto.SignRequests(s, id, payloads)[3] // index 3 of 6: proof of 3 entries
	withHeader := func(index, count uint64, proofEntries int) []byte {
		b := bytes.Clone(sig[:ed25519.SignatureSize])
		b = append(b, byte(index), byte(count))
		return append(b, make([]byte, proofEntries*crypto.DigestSize)...)
	}
	cases := map[string][]byte{
		"empty":                 nil,
		"short":                 sig[:ed25519.SignatureSize-1],
		"no count":              sig[:ed25519.SignatureSize+1],
		"proof entry missing":   sig[:len(sig)-crypto.DigestSize],
		"proof byte missing":    sig[:len(sig)-1],
		"extra byte":            append(bytes.Clone(sig), 0),
		"count 1":               withHeader(0, 1, 0),
		"count 0":               withHeader(0, 0, 0),
		"count above MaxBundle": withHeader(0, crypto.MaxBundle+1, 7),
		"index = count":         withHeader(6, 6, 3),
		"unterminated varint":   append(bytes.Clone(sig[:ed25519.SignatureSize]), 0x80, 0x80),
	}
	for name, bad := range cases {
		if _, err := crypto.CheckOfRequest(id, payloads[3], bad); !errors.Is(err, crypto.ErrBadRequestSignature) {
			t.Errorf("%s: got %v, want ErrBadRequestSignature", name, err)
		}
	}
	if _, err := crypto.CheckOfRequest(id, payloads[3], sig); err != nil {
		t.Fatalf("the well-formed signature: %v", err)
	}
}

// TestBundleCacheKeysAreSeparate: a verified bundle statement never
// vouches for a request payload with the same bytes.
func TestBundleCacheKeysAreSeparate(t *testing.T) {
	x, sig := []byte("same bytes"), make([]byte, 64)
	if crypto.VerifiedKey(x, sig) == crypto.VerifiedBundleKey(x, sig) {
		t.Fatal("a bundle statement and a request payload share a cache key")
	}
	plain := crypto.RequestCheck{Payload: x, Signature: sig}
	bundled := crypto.RequestCheck{Payload: x, Signature: sig, Bundled: true}
	if plain.Key() != crypto.VerifiedKey(x, sig) || bundled.Key() != crypto.VerifiedBundleKey(x, sig) {
		t.Fatal("RequestCheck.Key picks the wrong key")
	}
}

// TestMerkleInnerMatchesItsDefinition: SHA-256(domain || left || right),
// for a short domain (hashed from the stack) and a long one.
func TestMerkleInnerMatchesItsDefinition(t *testing.T) {
	left, right := crypto.BundleLeaf([]byte("l")), crypto.BundleLeaf([]byte("r"))
	for _, domain := range []string{"pbftnode/v1/bundle-node", string(bytes.Repeat([]byte("d"), 100))} {
		want := sha256.Sum256(append(append([]byte(domain), left[:]...), right[:]...))
		if got := crypto.MerkleInner(domain, left, right); got != want {
			t.Fatalf("domain of %d bytes: %x, want %x", len(domain), got, want)
		}
	}
	if n := testing.AllocsPerRun(10, func() { crypto.MerkleInner("pbftnode/v1/bundle-node", left, right) }); n != 0 {
		t.Fatalf("MerkleInner allocates %v times", n)
	}
}
