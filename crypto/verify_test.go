package crypto

import (
	"bytes"
	stded "crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"math/rand"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// TestSignMatchesStdlib: Ed25519 signing is deterministic, so Signer's
// signatures (curve25519-voi) are byte for byte crypto/ed25519's, and
// crypto/ed25519 accepts them.
func TestSignMatchesStdlib(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := range 200 {
		key := testKey(t, int64(1000+i))
		payload := make([]byte, rng.Intn(300))
		rng.Read(payload)
		s := NewSigner(key, testCluster)
		got := s.Sign(DomainClientRequest, payload)
		msg := SignedBytes(DomainClientRequest, testCluster, payload)
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
	signers := testSigners(t, 5)
	for i := range 400 {
		s := signers[i%len(signers)]
		payload := fmt.Appendf(nil, "payload %d", i)
		sig := s.Sign(DomainReplicaMessage, payload)
		pub := s.Public()
		switch i % 4 {
		case 1:
			sig[rng.Intn(len(sig))] ^= byte(1 + rng.Intn(255))
		case 2:
			payload[rng.Intn(len(payload))] ^= 1
		case 3:
			pub = signers[(i+1)%len(signers)].Public()
		}
		want := stded.Verify(pub, SignedBytes(DomainReplicaMessage, testCluster, payload), sig)
		if got := Verify(pub, testCluster, DomainReplicaMessage, payload, sig); got != want {
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
	msg := SignedBytes(string(domain), testCluster, payload)
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
	signers := testSigners(t, 4)
	key := testKey(t, 77)
	mixed := mixedOrderSignature(t, key, []byte(DomainClientRequest), []byte("mixed"))
	pubMixed := key.Public().(stded.PublicKey)
	if stded.Verify(pubMixed, SignedBytes(DomainClientRequest, testCluster, []byte("mixed")), mixed) {
		t.Fatal("crypto/ed25519 accepts the mixed-order signature; the test constructs the wrong thing")
	}
	if !Verify(pubMixed, testCluster, DomainClientRequest, []byte("mixed"), mixed) {
		t.Fatal("Verify rejects a ZIP-215-valid signature with a mixed-order R")
	}
	honest := NewSigner(key, testCluster).Sign(DomainClientRequest, []byte("mixed"))
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

	var edge []VerifyJob
	edge = append(edge,
		VerifyJob{PublicKey: pubMixed, Domain: DomainClientRequest, Payload: []byte("mixed"), Signature: mixed},
		VerifyJob{PublicKey: pubMixed, Domain: DomainClientRequest, Payload: []byte("mixed"), Signature: nonCanonicalS},
		VerifyJob{PublicKey: zero[:], Domain: DomainClientRequest, Payload: []byte("anything"), Signature: make([]byte, 64)},
		VerifyJob{PublicKey: pubMixed, Domain: DomainClientRequest, Payload: []byte("mixed"), Signature: honest},
	)
	want := []bool{true, false, false, true}
	for i, j := range edge {
		if got := Verify(j.PublicKey, testCluster, j.Domain, j.Payload, j.Signature); got != want[i] {
			t.Fatalf("edge case %d: Verify = %v, want %v", i, got, want[i])
		}
	}
	pool := NewPool(testCluster, 2)
	defer pool.Close()
	verifier := NewVerifier(testCluster)
	rng := rand.New(rand.NewSource(9))
	for _, size := range []int{1, 2, 3, 7, 8, 16, 17, 63, 64, 65, 100, 130, 200} {
		for round := range 3 {
			jobs, expect := mixedJobs(t, signers, size)
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
				single := Verify(j.PublicKey, testCluster, j.Domain, j.Payload, j.Signature)
				if single != expect[p] || verifier.Verify(&jobs[p]) != expect[p] {
					t.Fatalf("size %d job %d: Verify %v, Verifier.Verify %v, want %v", size, p, single, verifier.Verify(&jobs[p]), expect[p])
				}
			}
			checkResults(t, fmt.Sprintf("VerifyBatch size %d round %d", size, round), verifier.VerifyBatch(jobs), expect)
			checkResults(t, fmt.Sprintf("Pool size %d round %d", size, round), pool.VerifyAll(jobs), expect)
			checkResults(t, fmt.Sprintf("package VerifyBatch size %d round %d", size, round), VerifyBatch(testCluster, jobs), expect)
		}
	}
}

func TestKeyCacheEvicts(t *testing.T) {
	c := newKeyCache(3)
	signers := testSigners(t, 5)
	for _, s := range signers {
		if c.get(s.Public()) == nil {
			t.Fatal("valid key not expanded")
		}
	}
	if len(c.entries) != 3 || len(c.order) != 3 {
		t.Fatalf("cache holds %d entries, %d in order; want 3", len(c.entries), len(c.order))
	}
	if x := c.get(signers[4].Public()); x == nil || x != c.get(signers[4].Public()) {
		t.Fatal("a cached key is expanded again")
	}
}
