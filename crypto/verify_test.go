package crypto_test

import (
	"bytes"
	stded "crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"math/rand"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"

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

// mixedOrderSignature returns a signature by key over
// SignedBytes(domain, cluster, payload) whose R has a small-order
// component: R' = [r]B + T with T of order 4. The cofactored equation
// (ZIP-215) accepts it; crypto/ed25519's cofactorless check rejects it.
// It is the kind of signature on which verification rules can disagree,
// which is why every path must apply the same rules.
func mixedOrderSignature(t testing.TB, key stded.PrivateKey, domain, payload []byte) []byte {
	t.Helper()
	msg := crypto.SignedBytes(string(domain), testCluster, payload)
	h := sha512.Sum512(key.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	var a, r, k, s scalar.Scalar
	if _, err := a.SetBytesModOrder(h[:32]); err != nil {
		t.Fatal(err)
	}
	rh := sha512.Sum512(append(append([]byte(nil), h[32:]...), msg...))
	if _, err := r.SetBytesModOrderWide(rh[:]); err != nil {
		t.Fatal(err)
	}
	var R, T curve.EdwardsPoint
	R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &r)
	var zero curve.CompressedEdwardsY // y = 0: a point of order 4
	if _, err := T.SetCompressedY(&zero); err != nil {
		t.Fatal(err)
	}
	if !T.IsSmallOrder() || T.IsIdentity() {
		t.Fatal("T is not a non-trivial small-order point")
	}
	R.Add(&R, &T)
	rEnc, err := R.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	kh := sha512.New()
	kh.Write(rEnc)
	kh.Write(key.Public().(stded.PublicKey))
	kh.Write(msg)
	if _, err := k.SetBytesModOrderWide(kh.Sum(nil)); err != nil {
		t.Fatal(err)
	}
	s.Mul(&k, &a)
	s.Add(&s, &r)
	sig := make([]byte, 64)
	copy(sig, rEnc)
	if err := s.ToBytes(sig[32:]); err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestAllPathsAgreeOnEdgeCases: Verify, Verifier.Verify, VerifyBatch of
// any size and Pool.VerifyAll give the same verdict on every job, among
// them signatures the verification rules must decide consistently
// (mixed-order R, small-order keys, non-canonical S).
func TestAllPathsAgreeOnEdgeCases(t *testing.T) {
	signers := cryptotest.Signers(t, 4, testCluster)
	key := cryptotest.Key(t, 77)
	mixed := mixedOrderSignature(t, key, []byte(crypto.DomainClientRequest), []byte("mixed"))
	pubMixed := key.Public().(stded.PublicKey)
	if stded.Verify(pubMixed, crypto.SignedBytes(crypto.DomainClientRequest, testCluster, []byte("mixed")), mixed) {
		t.Fatal("crypto/ed25519 accepts the mixed-order signature; the test constructs the wrong thing")
	}
	if !crypto.Verify(pubMixed, testCluster, crypto.DomainClientRequest, []byte("mixed"), mixed) {
		t.Fatal("Verify rejects a ZIP-215-valid signature with a mixed-order R")
	}
	honest := crypto.NewSigner(key, testCluster).Sign(crypto.DomainClientRequest, []byte("mixed"))
	nonCanonicalS := bytes.Clone(honest)
	// S + L has the same value mod L but is not canonical.
	var sPlusL [32]byte
	carry := 0
	L := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	for i := range 32 {
		v := int(honest[32+i]) + int(L[i]) + carry
		sPlusL[i], carry = byte(v), v>>8
	}
	copy(nonCanonicalS[32:], sPlusL[:])
	var zero [32]byte

	var edge []crypto.VerifyJob
	edge = append(edge,
		crypto.VerifyJob{PublicKey: pubMixed, Domain: crypto.DomainClientRequest, Payload: []byte("mixed"), Signature: mixed},
		crypto.VerifyJob{PublicKey: pubMixed, Domain: crypto.DomainClientRequest, Payload: []byte("mixed"), Signature: nonCanonicalS},
		crypto.VerifyJob{PublicKey: zero[:], Domain: crypto.DomainClientRequest, Payload: []byte("anything"), Signature: make([]byte, 64)},
		crypto.VerifyJob{PublicKey: pubMixed, Domain: crypto.DomainClientRequest, Payload: []byte("mixed"), Signature: honest},
	)
	want := []bool{true, false, false, true}
	for i, j := range edge {
		if got := crypto.Verify(j.PublicKey, testCluster, j.Domain, j.Payload, j.Signature); got != want[i] {
			t.Fatalf("edge case %d: Verify = %v, want %v", i, got, want[i])
		}
	}
	verifier := crypto.NewVerifier(testCluster)
	rng := rand.New(rand.NewSource(9))
	for _, size := range []int{1, 2, 3, 7, 8, 16, 17, 63, 64, 65, 100, 130, 200} {
		for round := range 3 {
			jobs, expect := cryptotest.MixedJobs(t, signers, size)
			// Sprinkle edge cases in.
			for k := 0; k < 1+size/20; k++ {
				e := rng.Intn(len(edge))
				p := rng.Intn(size)
				jobs[p], expect[p] = edge[e], want[e]
			}
			if round == 2 { // all valid: the batch equation alone decides
				for p := range jobs {
					if !expect[p] {
						jobs[p], expect[p] = edge[0], true
					}
				}
			}
			for p, j := range jobs {
				single := crypto.Verify(j.PublicKey, testCluster, j.Domain, j.Payload, j.Signature)
				if single != expect[p] || verifier.Verify(&jobs[p]) != expect[p] {
					t.Fatalf("size %d job %d: Verify %v, Verifier.Verify %v, want %v", size, p, single, verifier.Verify(&jobs[p]), expect[p])
				}
			}
			cryptotest.CheckResults(t, fmt.Sprintf("VerifyBatch size %d round %d", size, round), verifier.VerifyBatch(jobs), expect)
			cryptotest.CheckResults(t, fmt.Sprintf("package VerifyBatch size %d round %d", size, round), crypto.VerifyBatch(testCluster, jobs), expect)
		}
	}
}
