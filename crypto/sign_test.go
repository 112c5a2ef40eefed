package crypto_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

const testCluster = "test-cluster"

func TestSignVerifyRoundTrip(t *testing.T) {
	signer := crypto.NewSigner(cryptotest.Key(t, 1), testCluster)
	payload := []byte("pre-prepare v=1 n=7")
	sig := signer.Sign(crypto.DomainReplicaMessage, payload)
	if len(sig) != ed25519.SignatureSize {
		t.Fatalf("signature length = %d, want %d", len(sig), ed25519.SignatureSize)
	}
	if !crypto.Verify(signer.Public(), testCluster, crypto.DomainReplicaMessage, payload, sig) {
		t.Fatal("Verify rejected a valid signature")
	}
	if signer.ClusterID() != testCluster {
		t.Fatalf("ClusterID = %q, want %q", signer.ClusterID(), testCluster)
	}
	// The signature is a plain Ed25519 signature over SignedBytes.
	if !ed25519.Verify(signer.Public(), crypto.SignedBytes(crypto.DomainReplicaMessage, testCluster, payload), sig) {
		t.Fatal("signature is not over SignedBytes(domain, cluster, payload)")
	}
}

func TestSignerCopiesKey(t *testing.T) {
	key := cryptotest.Key(t, 2)
	signer := crypto.NewSigner(key, testCluster)
	want := signer.Public()
	for i := range key {
		key[i] = 0
	}
	sig := signer.Sign(crypto.DomainClientRequest, []byte("x"))
	if !crypto.Verify(want, testCluster, crypto.DomainClientRequest, []byte("x"), sig) {
		t.Fatal("signer was affected by a change to the caller's key slice")
	}
	pub := signer.Public()
	pub[0] ^= 0xff
	if !bytes.Equal(signer.Public(), want) {
		t.Fatal("Public returned the signer's internal slice")
	}
}

func TestVerifyRejects(t *testing.T) {
	signer := crypto.NewSigner(cryptotest.Key(t, 3), testCluster)
	other := crypto.NewSigner(cryptotest.Key(t, 4), testCluster)
	payload := []byte("commit v=0 n=1")
	sig := signer.Sign(crypto.DomainReplicaMessage, payload)
	pub := signer.Public()

	modified := bytes.Clone(payload)
	modified[0] ^= 1
	flippedSig := bytes.Clone(sig)
	flippedSig[10] ^= 1

	tests := []struct {
		name    string
		pub     ed25519.PublicKey
		cluster string
		domain  string
		payload []byte
		sig     []byte
	}{
		{"other domain", pub, testCluster, crypto.DomainClientRequest, payload, sig},
		{"other cluster", pub, "other-cluster", crypto.DomainReplicaMessage, payload, sig},
		{"modified payload", pub, testCluster, crypto.DomainReplicaMessage, modified, sig},
		{"empty payload", pub, testCluster, crypto.DomainReplicaMessage, nil, sig},
		{"wrong key", other.Public(), testCluster, crypto.DomainReplicaMessage, payload, sig},
		{"flipped signature bit", pub, testCluster, crypto.DomainReplicaMessage, payload, flippedSig},
		{"truncated signature", pub, testCluster, crypto.DomainReplicaMessage, payload, sig[:63]},
		{"empty signature", pub, testCluster, crypto.DomainReplicaMessage, payload, []byte{}},
		{"nil signature", pub, testCluster, crypto.DomainReplicaMessage, payload, nil},
		{"oversized signature", pub, testCluster, crypto.DomainReplicaMessage, payload, append(bytes.Clone(sig), 0)},
		{"truncated public key", pub[:31], testCluster, crypto.DomainReplicaMessage, payload, sig},
		{"empty public key", ed25519.PublicKey{}, testCluster, crypto.DomainReplicaMessage, payload, sig},
		{"nil public key", nil, testCluster, crypto.DomainReplicaMessage, payload, sig},
		{"oversized public key", append(bytes.Clone(pub), 0), testCluster, crypto.DomainReplicaMessage, payload, sig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if crypto.Verify(tc.pub, tc.cluster, tc.domain, tc.payload, tc.sig) {
				t.Fatal("Verify accepted a signature it must reject")
			}
		})
	}
}

func TestSignedBytesFramingIsUnambiguous(t *testing.T) {
	type triple struct {
		domain, cluster string
		payload         []byte
	}
	triples := []triple{
		{"ab", "c", nil},
		{"a", "bc", nil},
		{"abc", "", nil},
		{"", "abc", nil},
		{"", "", []byte("abc")},
		{"a", "b", []byte("c")},
		{"a", "", []byte("bc")},
		{"ab", "", []byte("c")},
		// A domain whose bytes look like a length prefix.
		{"\x01a", "b", nil},
		{"\x01", "ab", nil},
	}
	seen := make(map[string]triple)
	for _, tr := range triples {
		got := string(crypto.SignedBytes(tr.domain, tr.cluster, tr.payload))
		if prev, dup := seen[got]; dup {
			t.Fatalf("SignedBytes(%q, %q, %q) == SignedBytes(%q, %q, %q)",
				tr.domain, tr.cluster, tr.payload, prev.domain, prev.cluster, prev.payload)
		}
		seen[got] = tr
	}

	// A signature over one split must not verify under another.
	signer := crypto.NewSigner(cryptotest.Key(t, 5), "c")
	sig := signer.Sign("ab", nil)
	if crypto.Verify(signer.Public(), "bc", "a", nil, sig) {
		t.Fatal(`signature for domain "ab", cluster "c" verified for domain "a", cluster "bc"`)
	}
}

func TestSignedBytesLayout(t *testing.T) {
	got := crypto.SignedBytes("dom", "cl", []byte{0xAA, 0xBB})
	want := append([]byte("pbftnode-sig"), 3, 'd', 'o', 'm', 2, 'c', 'l', 0xAA, 0xBB)
	if !bytes.Equal(got, want) {
		t.Fatalf("SignedBytes = %x, want %x", got, want)
	}
}

func TestNewSignerPanicsOnMalformedKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewSigner accepted a 10-byte private key")
		}
	}()
	crypto.NewSigner(make(ed25519.PrivateKey, 10), testCluster)
}

// FuzzVerify checks that Verify never panics on hostile input and never
// accepts a signature for a payload other than the signed one.
func FuzzVerify(f *testing.F) {
	signer := crypto.NewSigner(cryptotest.Key(f, 6), testCluster)
	signed := []byte("signed payload")
	sig := signer.Sign(crypto.DomainClientRequest, signed)
	f.Add([]byte(signer.Public()), signed, sig)
	f.Add([]byte{}, []byte{}, []byte{})
	f.Add([]byte(signer.Public())[:5], signed, sig[:5])
	f.Fuzz(func(t *testing.T, pub, payload, fuzzSig []byte) {
		ok := crypto.Verify(pub, testCluster, crypto.DomainClientRequest, payload, fuzzSig)
		if ok && bytes.Equal(pub, signer.Public()) && !bytes.Equal(payload, signed) {
			t.Fatalf("Verify accepted the signer's key over unsigned payload %q", payload)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	signer := crypto.NewSigner(cryptotest.Key(b, 40), testCluster)
	payload := bytes.Repeat([]byte{0x42}, 256)
	sig := signer.Sign(crypto.DomainReplicaMessage, payload)
	pub := signer.Public()
	b.ReportAllocs()
	for b.Loop() {
		if !crypto.Verify(pub, testCluster, crypto.DomainReplicaMessage, payload, sig) {
			b.Fatal("valid signature rejected")
		}
	}
}
