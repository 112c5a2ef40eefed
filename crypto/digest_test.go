package crypto

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

func signed(payload string, sig string) *wire.Signed {
	return &wire.Signed{Payload: []byte(payload), Signature: []byte(sig)}
}

func TestRequestDigest(t *testing.T) {
	want := Digest(sha256.Sum256([]byte("pbftnode/v1/request" + "op")))
	if got := RequestDigest([]byte("op")); got != want {
		t.Fatalf("RequestDigest = %s, want %s", got.Hex(), want.Hex())
	}
	if RequestDigest([]byte("op")) == RequestDigest([]byte("oq")) {
		t.Fatal("RequestDigest ignores payload content")
	}
}

func TestBatchDigest(t *testing.T) {
	a, b, c := signed("a", "sig-a"), signed("b", "sig-b"), signed("c", "sig-c")
	ab := BatchDigest([]*wire.Signed{a, b})

	if BatchDigest([]*wire.Signed{a, b}) != ab {
		t.Fatal("BatchDigest is not deterministic")
	}
	if BatchDigest([]*wire.Signed{b, a}) == ab {
		t.Fatal("BatchDigest does not depend on request order")
	}
	if BatchDigest([]*wire.Signed{a, c}) == ab {
		t.Fatal("BatchDigest does not depend on request content")
	}
	if BatchDigest([]*wire.Signed{a}) == ab || BatchDigest([]*wire.Signed{a, b, c}) == ab {
		t.Fatal("BatchDigest does not depend on the number of requests")
	}
	// Signatures are not part of a request's identity.
	if BatchDigest([]*wire.Signed{signed("a", "other"), signed("b", "")}) != ab {
		t.Fatal("BatchDigest depends on signatures")
	}
	// A batch digest is never a request digest.
	if BatchDigest([]*wire.Signed{a}) == RequestDigest([]byte("a")) {
		t.Fatal("a one-request batch has its request's digest")
	}
}

func TestBatchDigestEmptyIsStable(t *testing.T) {
	empty := BatchDigest(nil)
	if BatchDigest([]*wire.Signed{}) != empty {
		t.Fatal("nil and empty batches have different digests")
	}
	// SHA-256("pbftnode/v1/batch" || uvarint(0)): a fixed value other
	// implementations can check against.
	want := sha256.Sum256(append([]byte("pbftnode/v1/batch"), 0))
	if empty != Digest(want) {
		t.Fatalf("empty batch digest = %s, want %s", empty.Hex(), hex.EncodeToString(want[:]))
	}
	if empty == BatchDigest([]*wire.Signed{signed("", "")}) {
		t.Fatal("empty batch has the digest of a batch holding one empty request")
	}
}

func TestDigestStringAndFromBytes(t *testing.T) {
	d := RequestDigest([]byte("x"))
	if got, want := d.String(), d.Hex()[:12]; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	back, err := DigestFromBytes(d[:])
	if err != nil || back != d {
		t.Fatalf("DigestFromBytes(d) = %v, %v; want %v", back, err, d)
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := DigestFromBytes(make([]byte, n)); err == nil {
			t.Fatalf("DigestFromBytes accepted %d bytes", n)
		}
	}
}
