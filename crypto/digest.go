package crypto

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/pbftnode/pbftnode/wire"
)

// Domain prefixes of the digests, so a request digest can never equal a
// batch digest or any other SHA-256 the project computes.
const (
	requestDigestPrefix = "pbftnode/v1/request"
	batchDigestPrefix   = "pbftnode/v1/batch"
)

// DigestSize is the length of a Digest in bytes.
const DigestSize = sha256.Size

// Digest is a SHA-256 digest.
type Digest [DigestSize]byte

// String returns the first 6 bytes of d in hex (12 characters), enough to
// tell digests apart in logs. Use Hex for the full value.
func (d Digest) String() string {
	return hex.EncodeToString(d[:6])
}

// Hex returns all 32 bytes of d in lowercase hex.
func (d Digest) Hex() string {
	return hex.EncodeToString(d[:])
}

// DigestFromBytes converts a digest received as bytes (for example a
// wire.Prepare digest field) into a Digest. It fails unless b is exactly
// DigestSize bytes long.
func DigestFromBytes(b []byte) (Digest, error) {
	var d Digest
	if len(b) != DigestSize {
		return d, fmt.Errorf("crypto: digest is %d bytes, want %d", len(b), DigestSize)
	}
	copy(d[:], b)
	return d, nil
}

// RequestDigest identifies a signed client request: SHA-256 over
// "pbftnode/v1/request" || payload, where payload is the encoded
// wire.Request. The signature is deliberately not covered, so a different
// (malleated) signature over the same request does not change its identity.
func RequestDigest(payload []byte) Digest {
	return prefixedDigest(requestDigestPrefix, payload)
}

// prefixedDigest is SHA-256(prefix || data).
func prefixedDigest(prefix string, data []byte) Digest {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(data)
	var d Digest
	h.Sum(d[:0])
	return d
}

// BatchDigest identifies an ordered batch of signed client requests:
// SHA-256 over "pbftnode/v1/batch" || uvarint(len(requests)) || the
// RequestDigest of each request's payload, in order. It depends on the
// order and the payloads of the requests, not on their signatures. The
// empty batch (the null request of a view change) has a fixed digest. A nil
// entry is hashed as a request with an empty payload.
func BatchDigest(requests []*wire.Signed) Digest {
	h := sha256.New()
	h.Write([]byte(batchDigestPrefix))
	h.Write(binary.AppendUvarint(nil, uint64(len(requests))))
	for _, request := range requests {
		requestDigest := RequestDigest(request.GetPayload())
		h.Write(requestDigest[:])
	}
	var d Digest
	h.Sum(d[:0])
	return d
}
