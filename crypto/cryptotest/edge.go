package cryptotest

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
)

// JobSet is a set of verification jobs and the verdict each must get.
type JobSet struct {
	Label string // names the set in failures
	Jobs  []crypto.VerifyJob
	Want  []bool
}

// EdgeJobs returns, for clusterID, signature jobs on which verification
// rules can disagree, and the verdict the ZIP-215 rules (crypto.Verify)
// give each: a signature whose R has a small-order component (valid), the
// same with a non-canonical S (invalid), the all-zero small-order key
// (invalid) and an honest signature (valid).
func EdgeJobs(t testing.TB, clusterID string) ([]crypto.VerifyJob, []bool) {
	t.Helper()
	key := Key(t, 77)
	mixed := mixedOrderSignature(t, key, clusterID, []byte(crypto.DomainClientRequest), []byte("mixed"))
	pubMixed := key.Public().(stded.PublicKey)
	if stded.Verify(pubMixed, crypto.SignedBytes(crypto.DomainClientRequest, clusterID, []byte("mixed")), mixed) {
		t.Fatal("crypto/ed25519 accepts the mixed-order signature; the test constructs the wrong thing")
	}
	honest := crypto.NewSigner(key, clusterID).Sign(crypto.DomainClientRequest, []byte("mixed"))
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
	return edge, []bool{true, false, false, true}
}

// AgreementSets returns the job sets every verification path must decide
// alike: MixedJobs of sizes around the batch and chunk boundaries, three
// rounds each, with EdgeJobs sprinkled in from a fixed seed (the third
// round all valid, so the batch equation alone decides).
func AgreementSets(t testing.TB, signers []*crypto.Signer, clusterID string) []JobSet {
	t.Helper()
	edge, want := EdgeJobs(t, clusterID)
	var sets []JobSet
	rng := rand.New(rand.NewSource(9))
	for _, size := range []int{1, 2, 3, 7, 8, 16, 17, 63, 64, 65, 100, 130, 200} {
		for round := range 3 {
			jobs, expect := MixedJobs(t, signers, size)
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
			sets = append(sets, JobSet{Label: fmt.Sprintf("size %d round %d", size, round), Jobs: jobs, Want: expect})
		}
	}
	return sets
}

// mixedOrderSignature returns a signature by key over
// crypto.SignedBytes(domain, clusterID, payload) whose R has a small-order
// component: R' = [r]B + T with T of order 4. The cofactored equation
// (ZIP-215) accepts it; crypto/ed25519's cofactorless check rejects it.
// It is the kind of signature on which verification rules can disagree,
// which is why every path must apply the same rules.
func mixedOrderSignature(t testing.TB, key stded.PrivateKey, clusterID string, domain, payload []byte) []byte {
	t.Helper()
	msg := crypto.SignedBytes(string(domain), clusterID, payload)
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
