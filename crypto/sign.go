package crypto

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	voied "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Signature domains. Each names one purpose a signature can serve; a
// signature made under one domain never verifies under another.
const (
	// DomainReplicaMessage signs the encoded wire.ReplicaMessage carried
	// in a wire.Signed frame between replicas.
	DomainReplicaMessage = "pbftnode/v1/replica-message"
	// DomainClientRequest signs the encoded wire.Request a client sends.
	DomainClientRequest = "pbftnode/v1/client-request"
)

// signaturePrefix starts every signed byte string, so pbftnode signatures
// cannot collide with anything else a key might sign.
const signaturePrefix = "pbftnode-sig"

// SignedBytes returns the exact bytes that are signed for payload under
// domain in the cluster clusterID:
//
//	"pbftnode-sig" || uvarint(len(domain)) || domain ||
//	uvarint(len(clusterID)) || clusterID || payload
//
// The length prefixes make the framing unambiguous: distinct (domain,
// clusterID, payload) triples always give distinct byte strings.
func SignedBytes(domain, clusterID string, payload []byte) []byte {
	size := len(signaturePrefix) +
		binary.MaxVarintLen64 + len(domain) +
		binary.MaxVarintLen64 + len(clusterID) +
		len(payload)
	out := make([]byte, 0, size)
	out = append(out, signaturePrefix...)
	out = binary.AppendUvarint(out, uint64(len(domain)))
	out = append(out, domain...)
	out = binary.AppendUvarint(out, uint64(len(clusterID)))
	out = append(out, clusterID...)
	return append(out, payload...)
}

// Signer signs payloads with one Ed25519 private key for one cluster. It is
// immutable and safe for concurrent use.
type Signer struct {
	key       ed25519.PrivateKey
	public    ed25519.PublicKey
	clusterID string
}

// NewSigner returns a Signer for key in the cluster clusterID. The key is
// copied. key must be a well-formed ed25519.PrivateKey (as returned by
// GenerateKey or keyfile.Read); NewSigner panics otherwise, because a
// malformed private key is a programming error, never network input.
func NewSigner(key ed25519.PrivateKey, clusterID string) *Signer {
	if len(key) != ed25519.PrivateKeySize {
		panic(fmt.Sprintf("crypto: NewSigner: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize))
	}
	owned := make(ed25519.PrivateKey, ed25519.PrivateKeySize)
	copy(owned, key)
	return &Signer{
		key:       owned,
		public:    owned.Public().(ed25519.PublicKey),
		clusterID: clusterID,
	}
}

// Sign returns the 64-byte Ed25519 signature over
// SignedBytes(domain, s.ClusterID(), payload). Ed25519 signing is
// deterministic (RFC 8032): the signature is byte for byte the one
// crypto/ed25519.Sign makes; curve25519-voi just makes it faster.
func (s *Signer) Sign(domain string, payload []byte) []byte {
	return voied.Sign(voied.PrivateKey(s.key), SignedBytes(domain, s.clusterID, payload))
}

// Public returns a copy of the signer's public key.
func (s *Signer) Public() ed25519.PublicKey {
	out := make(ed25519.PublicKey, len(s.public))
	copy(out, s.public)
	return out
}

// ClusterID returns the cluster ID the signer signs for.
func (s *Signer) ClusterID() string {
	return s.clusterID
}

// Verify reports whether sig is pub's signature over
// SignedBytes(domain, clusterID, payload), under the ZIP-215 rules every
// pbftnode verification uses (see verifyOptions). It never panics: a
// public key or signature of the wrong length (including nil or empty)
// yields false.
func Verify(pub ed25519.PublicKey, clusterID, domain string, payload, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return voied.VerifyWithOptions(voied.PublicKey(pub), SignedBytes(domain, clusterID, payload), sig, verifyOptions)
}

// Membership signature domains (package membership).
const (
	// DomainConfigChange signs an encoded wire.ConfigChange: an
	// administrator's approval of one configuration change.
	DomainConfigChange = "pbftnode/v1/config-change"
	// DomainConfigVote signs an encoded wire.ConfigVote: a member's
	// statement that a configuration holds from a sequence on.
	DomainConfigVote = "pbftnode/v1/config-vote"
)
