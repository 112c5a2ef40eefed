package receipt

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/crypto"
)

// Hash domains: a leaf hash can never equal an inner node's hash, so a
// proof cannot pass an inner node off as a leaf or the reverse.
const (
	leafDomain  = "pbftnode/v1/receipt-leaf"
	innerDomain = "pbftnode/v1/receipt-node"
)

// MaxLeaves bounds the leaves of a results tree (and so a proof's length)
// that Verify and VerifyProof accept: far above any batch size.
const MaxLeaves = crypto.MaxMerkleLeaves

// ErrBadProof: the inclusion proof does not lead from the leaf to the
// signed results root (wrong sibling, index, count or length), or the
// leaf (client, request number, raw result) is not the one signed.
var ErrBadProof = errors.New("receipt: inclusion proof does not match the signed results root")

// LeafHash is the leaf of one reply, as wire.ReplyReceipt defines it:
// SHA-256("pbftnode/v1/receipt-leaf" || uvarint(len clientID) || clientID
// || uvarint(requestNumber) || SHA-256(result)).
func LeafHash(clientID []byte, requestNumber uint64, result []byte) crypto.Digest {
	resultHash := sha256.Sum256(result)
	h := sha256.New()
	h.Write([]byte(leafDomain))
	var buf [binary.MaxVarintLen64]byte
	h.Write(binary.AppendUvarint(buf[:0], uint64(len(clientID))))
	h.Write(clientID)
	h.Write(binary.AppendUvarint(buf[:0], requestNumber))
	h.Write(resultHash[:])
	var d crypto.Digest
	h.Sum(d[:0])
	return d
}

// Tree is a results tree: a crypto.MerkleTree over the batch's reply
// leaves, its inner nodes hashed under "pbftnode/v1/receipt-node" (see
// crypto.MerkleTree for the shape and the proofs).
type Tree = crypto.MerkleTree

// NewTree builds the results tree over leaves (at least one; they are not
// copied). It panics on none: the driver builds a tree only for a batch
// that produced replies.
func NewTree(leaves []crypto.Digest) *Tree {
	return crypto.NewMerkleTree(innerDomain, leaves)
}

// VerifyProof checks that leaf is the leaf at index of a results tree of
// count leaves whose root is root, given proof (Tree.Proof's form). It
// refuses an index at or above count, a count of 0 or above MaxLeaves,
// and a proof with an entry missing or one too many: the result wraps
// ErrBadProof.
func VerifyProof(leaf crypto.Digest, index, count uint64, proof []crypto.Digest, root crypto.Digest) error {
	if err := crypto.VerifyMerkleProof(innerDomain, leaf, index, count, proof, root); err != nil {
		return fmt.Errorf("%w: %w", ErrBadProof, err)
	}
	return nil
}
