package crypto

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
)

// Request bundles: a client that has several requests to sign at once signs
// one statement over a Merkle tree of their payloads instead of each
// payload, and each request carries that one signature and its leaf's
// proof. A replica checks the proof (a few SHA-256s) and the statement's
// signature, which it checks once for every request of the bundle it sees
// (MessageVerifier's cache and per-round deduplication key on the
// statement). Each request of a bundle still travels, is ordered and is
// identified (RequestDigest covers the payload only) on its own.
//
// The signature of a bundled request (wire.Signed.signature) is
//
//	sig || uvarint(index) || uvarint(count) || proof
//
// where sig is the 64-byte Ed25519 signature over
// SignedBytes(DomainClientRequestBundle, clusterID, BundleStatement(clientID,
// count, root)), root the root of the MerkleTree (inner nodes under
// "pbftnode/v1/bundle-node") over BundleLeaf of each payload in the order
// signed, index the request's leaf, 2 <= count <= MaxBundle, and proof
// that leaf's MerkleTree.Proof, 32 bytes per entry. A plain request's
// signature is exactly 64 bytes: the two forms never share a length.
const (
	// DomainClientRequestBundle signs a BundleStatement.
	DomainClientRequestBundle = "pbftnode/v1/client-request-bundle"
	// MaxBundle is the most requests one bundle signature covers (a
	// proof of at most 6 entries).
	MaxBundle = 64

	// maxBundleProof is the longest proof of a bundle of MaxBundle.
	maxBundleProof = 6

	bundleLeafDomain = "pbftnode/v1/bundle-leaf"
	bundleNodeDomain = "pbftnode/v1/bundle-node"
)

// ErrBadRequestSignature: a client request's signature field is neither a
// 64-byte signature nor a well-formed bundle signature whose proof leads
// from the request to a root.
var ErrBadRequestSignature = errors.New("crypto: malformed client request signature")

// BundleLeaf is the leaf of one request payload in a bundle's tree:
// SHA-256("pbftnode/v1/bundle-leaf" || payload).
func BundleLeaf(payload []byte) Digest {
	return prefixedDigest(bundleLeafDomain, payload)
}

// BundleStatement is what a bundle's signature signs:
// uvarint(len(clientID)) || clientID || uvarint(count) || root. It names
// the client, so a bundle verified under one client's key can never vouch
// for a request naming another.
func BundleStatement(clientID []byte, count uint64, root Digest) []byte {
	out := make([]byte, 0, 2*binary.MaxVarintLen64+len(clientID)+DigestSize)
	out = binary.AppendUvarint(out, uint64(len(clientID)))
	out = append(out, clientID...)
	out = binary.AppendUvarint(out, count)
	return append(out, root[:]...)
}

// SignRequests returns the signature field of each payload, in order, for
// the client clientID whose key s holds: one plain signature (Sign under
// DomainClientRequest) for a single payload, else one bundle signature per
// MaxBundle payloads, each request carrying it with its proof.
func SignRequests(s *Signer, clientID []byte, payloads [][]byte) [][]byte {
	out := make([][]byte, 0, len(payloads))
	for start := 0; start < len(payloads); start += MaxBundle {
		part := payloads[start:min(start+MaxBundle, len(payloads))]
		if len(part) == 1 {
			out = append(out, s.Sign(DomainClientRequest, part[0]))
			continue
		}
		out = append(out, signBundle(s, clientID, part)...)
	}
	return out
}

// signBundle signs 2 to MaxBundle payloads as one bundle.
func signBundle(s *Signer, clientID []byte, payloads [][]byte) [][]byte {
	leaves := make([]Digest, len(payloads))
	for i, p := range payloads {
		leaves[i] = BundleLeaf(p)
	}
	tree := NewMerkleTree(bundleNodeDomain, leaves)
	count := uint64(len(payloads))
	sig := s.Sign(DomainClientRequestBundle, BundleStatement(clientID, count, tree.Root()))
	out := make([][]byte, len(payloads))
	for i := range payloads {
		proof := tree.Proof(i)
		b := make([]byte, 0, ed25519.SignatureSize+2*binary.MaxVarintLen64+len(proof)*DigestSize)
		b = append(b, sig...)
		b = binary.AppendUvarint(b, uint64(i))
		b = binary.AppendUvarint(b, count)
		for _, h := range proof {
			b = append(b, h[:]...)
		}
		out[i] = b
	}
	return out
}

// RequestCheck is the Ed25519 check a client request's signature stands
// for: Signature over SignedBytes(Domain, clusterID, Payload) by the key
// of the request's client. For a plain signature that is the request's
// own payload; for a bundle signature, the bundle's statement.
type RequestCheck struct {
	Domain    string
	Payload   []byte
	Signature []byte
	// Bundled is set for a bundle signature: Payload is a statement,
	// which a cache must key apart from request payloads
	// (VerifiedBundleKey).
	Bundled bool
}

// CheckOfRequest returns the check that sig, the signature field of a
// request of client clientID with payload payload, stands for. A bundle
// signature's proof is checked here (it costs a few SHA-256s); an error
// (wrapping ErrBadRequestSignature) means no check can make the request
// valid. sig is not copied.
func CheckOfRequest(clientID, payload, sig []byte) (RequestCheck, error) {
	return checkOfRequest(clientID, payload, sig, nil)
}

// checkOfRequest is CheckOfRequest, remembering in c (when not nil) what
// the next requests of the same bundle can use (RequestChecker).
func checkOfRequest(clientID, payload, sig []byte, c *RequestChecker) (RequestCheck, error) {
	if len(sig) == ed25519.SignatureSize {
		return RequestCheck{Domain: DomainClientRequest, Payload: payload, Signature: sig}, nil
	}
	if len(sig) < ed25519.SignatureSize+2 {
		return RequestCheck{}, fmt.Errorf("%w: %d bytes", ErrBadRequestSignature, len(sig))
	}
	rest := sig[ed25519.SignatureSize:]
	index, n := binary.Uvarint(rest)
	if n <= 0 {
		return RequestCheck{}, fmt.Errorf("%w: bundle index", ErrBadRequestSignature)
	}
	rest = rest[n:]
	count, n := binary.Uvarint(rest)
	if n <= 0 {
		return RequestCheck{}, fmt.Errorf("%w: bundle count", ErrBadRequestSignature)
	}
	rest = rest[n:]
	if count < 2 || count > MaxBundle || index >= count {
		return RequestCheck{}, fmt.Errorf("%w: leaf %d of a bundle of %d (want 2..%d)", ErrBadRequestSignature, index, count, MaxBundle)
	}
	want := MerkleProofLen(index, count)
	if want > maxBundleProof || len(rest) != want*DigestSize {
		return RequestCheck{}, fmt.Errorf("%w: proof of %d bytes, want %d", ErrBadRequestSignature, len(rest), want*DigestSize)
	}
	var entries [maxBundleProof]Digest
	proof := entries[:want]
	for i := range proof {
		copy(proof[i][:], rest[i*DigestSize:])
	}
	root, err := merkleRootOf(bundleNodeDomain, BundleLeaf(payload), index, count, proof, c)
	if err != nil {
		return RequestCheck{}, fmt.Errorf("%w: %w", ErrBadRequestSignature, err)
	}
	return c.bundled(clientID, count, root, sig[:ed25519.SignatureSize:ed25519.SignatureSize]), nil
}
