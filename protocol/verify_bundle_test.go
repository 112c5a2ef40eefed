package protocol

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// fzBundle returns requests signed as one bundle by client signer: the
// requests name the clients in owners (client signer's own id, or
// another's to forge), numbered from first.
func fzBundle(tb testing.TB, signer int, owners []int, first uint64) []*wire.Signed {
	tb.Helper()
	payloads := make([][]byte, len(owners))
	for i, owner := range owners {
		id := fzClientKey(owner).Public().(ed25519.PublicKey)
		payloads[i] = fzMarshal(tb, &wire.Request{ClientId: id, RequestNumber: first + uint64(i), Operation: []byte(fmt.Sprintf("put b%d v", i))})
	}
	key := fzClientKey(signer)
	sigs := crypto.SignRequests(crypto.NewSigner(key, fzCluster), key.Public().(ed25519.PublicKey), payloads)
	out := make([]*wire.Signed, len(payloads))
	for i := range payloads {
		out[i] = &wire.Signed{Payload: payloads[i], Signature: sigs[i]}
	}
	return out
}

// fzOwners is n times client c.
func fzOwners(c, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = c
	}
	return out
}

// fzPrePrepareFrame is replica 0's pre-prepare of batch at sequence.
func fzPrePrepareFrame(tb testing.TB, sequence uint64, batch []*wire.Signed) []byte {
	d := crypto.BatchDigest(batch)
	body := &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{Sequence: sequence, Digest: d[:]}}}
	payload := fzMarshal(tb, body)
	sig := crypto.NewSigner(fzReplicaKey(0), fzCluster).Sign(crypto.DomainReplicaMessage, payload)
	return fzMarshal(tb, &wire.ReplicaFrame{Message: &wire.Signed{Payload: payload, Signature: sig}, Batch: batch})
}

// TestBundledRequestsAreCheckedOnce: the requests of one bundle cost one
// client signature check however many of them a pre-prepare carries, and
// none once the cache holds the bundle; without a cache each is checked
// on its own, with the same verdicts.
func TestBundledRequestsAreCheckedOnce(t *testing.T) {
	first := fzBundle(t, 0, fzOwners(0, 12), 100)
	second := fzBundle(t, 1, fzOwners(1, 4), 200)
	batch := append(append([]*wire.Signed{}, first...), second...)
	frame := fzPrePrepareFrame(t, 2, batch)

	pool := &countingPool{v: crypto.NewVerifier(fzCluster)}
	v := NewMessageVerifier(fzCluster, fzPublicKeys(), crypto.NewVerifiedCache(64), pool, 0)
	m, err := v.ReplicaFrame(frame)
	if err != nil || len(m.Requests) != len(batch) {
		t.Fatalf("pre-prepare of two bundles: %v (%d requests)", err, len(m.Requests))
	}
	if got := pool.jobs.Load(); got != 3 {
		t.Fatalf("%d signatures checked, want 3 (the replica's and one per bundle)", got)
	}
	if _, err := v.ClientRequest(first[5]); err != nil {
		t.Fatal(err)
	}
	if got := pool.jobs.Load(); got != 3 {
		t.Fatalf("a member of a verified bundle was checked again (%d signatures)", got)
	}

	uncached := &countingPool{v: crypto.NewVerifier(fzCluster)}
	plain := NewMessageVerifier(fzCluster, fzPublicKeys(), nil, uncached, 0)
	if _, err := plain.ReplicaFrame(frame); err != nil {
		t.Fatal(err)
	}
	if got := uncached.jobs.Load(); got != int64(1+len(batch)) {
		t.Fatalf("without a cache: %d signatures checked, want %d", got, 1+len(batch))
	}
}

// TestBundleForgeriesAreRefused: a bundle vouches only for the payloads
// it was signed over and only for the client that signed it, also once
// the cache holds it.
func TestBundleForgeriesAreRefused(t *testing.T) {
	v := NewMessageVerifier(fzCluster, fzPublicKeys(), crypto.NewVerifiedCache(64), nil, 0)
	// Client 0 signs a bundle holding a request that names client 1.
	mixed := fzBundle(t, 0, []int{0, 1, 0}, 300)
	if _, err := v.ClientRequest(mixed[0]); err != nil {
		t.Fatalf("client 0's own request: %v", err)
	}
	if _, err := v.ClientRequest(mixed[1]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("client 1's request in client 0's bundle: got %v, want ErrBadSignature", err)
	}
	// A member's signature field on another payload.
	swapped := &wire.Signed{Payload: mixed[2].Payload, Signature: mixed[0].Signature}
	if _, err := v.ClientRequest(swapped); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("member 0's signature on member 2's payload: got %v, want ErrBadSignature", err)
	}
	// Inside a pre-prepare, the forged member sinks it.
	if _, err := v.ReplicaFrame(fzPrePrepareFrame(t, 3, []*wire.Signed{mixed[0], mixed[1]})); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("pre-prepare with a forged member: got %v, want ErrBadSignature", err)
	}
	// A truncated proof is refused before any check.
	short := &wire.Signed{Payload: mixed[2].Payload, Signature: mixed[2].Signature[:len(mixed[2].Signature)-1]}
	if _, err := v.ClientRequest(short); !errors.Is(err, ErrBadSignature) || !errors.Is(err, crypto.ErrBadRequestSignature) {
		t.Fatalf("truncated proof: got %v", err)
	}
	if _, err := v.ClientRequest(mixed[2]); err != nil {
		t.Fatalf("the untouched member: %v", err)
	}
}

// BenchmarkVerifyBundledPrePrepare is BenchmarkVerifyPrePrepare with each
// of 8 clients' requests signed as one bundle, verified with a cache (as
// a replica does; a fresh cache each time, so nothing is vouched for):
// 1+8 signatures and the proofs' hashes for any batch size.
func BenchmarkVerifyBundledPrePrepare(b *testing.B) {
	for _, size := range []int{8, 32, 64, 256} {
		b.Run(fmt.Sprintf("requests=%d", size), func(b *testing.B) {
			var batch []*wire.Signed
			for c := range 8 {
				batch = append(batch, fzBundle(b, c%fzClients, fzOwners(c%fzClients, size/8), uint64(1000*c))...)
			}
			frame := fzPrePrepareFrame(b, 1, batch)
			b.ReportAllocs()
			for b.Loop() {
				v := NewMessageVerifier(fzCluster, fzPublicKeys(), crypto.NewVerifiedCache(64), nil, 0)
				if _, err := v.ReplicaFrame(frame); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/request")
		})
	}
}
