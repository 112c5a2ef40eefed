package crypto_test

import (
	"bytes"
	stded "crypto/ed25519"
	"fmt"
	"math/rand"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

// TestSignMatchesStdlib: Ed25519 signing is deterministic, so Signer's
// signatures (curve25519-voi) are byte for byte crypto/ed25519's, and
// crypto/ed25519 accepts them.
func TestSignMatchesStdlib(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := range 200 {
		key := cryptotest.Key(t, int64(1000+i))
		payload := make([]byte, rng.Intn(300))
		rng.Read(payload)
		s := crypto.NewSigner(key, testCluster)
		got := s.Sign(crypto.DomainClientRequest, payload)
		msg := crypto.SignedBytes(crypto.DomainClientRequest, testCluster, payload)
		if want := stded.Sign(key, msg); !bytes.Equal(got, want) {
			t.Fatalf("key %d: signature %x, crypto/ed25519 signs %x", i, got, want)
		}
		if !stded.Verify(s.Public(), msg, got) {
			t.Fatalf("key %d: crypto/ed25519 rejects the signature", i)
		}
	}
}

// TestVerifyAgreesWithStdlibOnHonestAndCorrupted: on honest signatures and
// on corrupted ones (the only kinds that are not crafted on purpose with
// special points), Verify says what crypto/ed25519 says.
func TestVerifyAgreesWithStdlibOnHonestAndCorrupted(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	signers := cryptotest.Signers(t, 5, testCluster)
	for i := range 400 {
		s := signers[i%len(signers)]
		payload := fmt.Appendf(nil, "payload %d", i)
		sig := s.Sign(crypto.DomainReplicaMessage, payload)
		pub := s.Public()
		switch i % 4 {
		case 1:
			sig[rng.Intn(len(sig))] ^= byte(1 + rng.Intn(255))
		case 2:
			payload[rng.Intn(len(payload))] ^= 1
		case 3:
			pub = signers[(i+1)%len(signers)].Public()
		}
		want := stded.Verify(pub, crypto.SignedBytes(crypto.DomainReplicaMessage, testCluster, payload), sig)
		if got := crypto.Verify(pub, testCluster, crypto.DomainReplicaMessage, payload, sig); got != want {
			t.Fatalf("case %d: Verify = %v, crypto/ed25519 = %v", i, got, want)
		}
	}
}

// TestAllPathsAgreeOnEdgeCases: Verify, Verifier.Verify and VerifyBatch of
// any size give the same verdict on every job, among them signatures the
// verification rules must decide consistently (mixed-order R, small-order
// keys, non-canonical S; cryptotest.EdgeJobs). verifypool's
// TestPoolAgreesWithVerifier holds the pool to the same sets.
func TestAllPathsAgreeOnEdgeCases(t *testing.T) {
	edge, want := cryptotest.EdgeJobs(t, testCluster)
	for i, j := range edge {
		if got := crypto.Verify(j.PublicKey, testCluster, j.Domain, j.Payload, j.Signature); got != want[i] {
			t.Fatalf("edge case %d: Verify = %v, want %v", i, got, want[i])
		}
	}
	verifier := crypto.NewVerifier(testCluster)
	for _, set := range cryptotest.AgreementSets(t, cryptotest.Signers(t, 4, testCluster), testCluster) {
		jobs, expect := set.Jobs, set.Want
		for p, j := range jobs {
			single := crypto.Verify(j.PublicKey, testCluster, j.Domain, j.Payload, j.Signature)
			if single != expect[p] || verifier.Verify(&jobs[p]) != expect[p] {
				t.Fatalf("%s job %d: Verify %v, Verifier.Verify %v, want %v", set.Label, p, single, verifier.Verify(&jobs[p]), expect[p])
			}
		}
		cryptotest.CheckResults(t, "VerifyBatch "+set.Label, verifier.VerifyBatch(jobs), expect)
		cryptotest.CheckResults(t, "package VerifyBatch "+set.Label, crypto.VerifyBatch(testCluster, jobs), expect)
	}
}
