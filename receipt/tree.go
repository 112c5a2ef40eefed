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
const MaxLeaves = 1 << 20

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

// innerHash is SHA-256("pbftnode/v1/receipt-node" || left || right).
func innerHash(left, right crypto.Digest) crypto.Digest {
	h := sha256.New()
	h.Write([]byte(innerDomain))
	h.Write(left[:])
	h.Write(right[:])
	var d crypto.Digest
	h.Sum(d[:0])
	return d
}

// Tree is a results tree: a binary Merkle tree built level by level from
// the leaves in order. At each level nodes 2i and 2i+1 are hashed into
// node i of the next level; when a level has an odd number of nodes, its
// last node is promoted to the next level unchanged (it is not hashed
// with itself, and its proof has no entry for that level). The root of a
// single leaf is the leaf. The shape is a function of the leaf count
// alone, so (index, count) fixes which proof entries exist and on which
// side each sibling is.
type Tree struct {
	// levels[0] are the leaves, the last level holds the root.
	levels [][]crypto.Digest
}

// NewTree builds the tree over leaves (at least one; they are not
// copied). It panics on none: the driver builds a tree only for a batch
// that produced replies.
func NewTree(leaves []crypto.Digest) *Tree {
	if len(leaves) == 0 {
		panic("receipt: NewTree with no leaves")
	}
	t := &Tree{levels: [][]crypto.Digest{leaves}}
	for level := leaves; len(level) > 1; {
		next := make([]crypto.Digest, (len(level)+1)/2)
		for i := range next {
			if 2*i+1 < len(level) {
				next[i] = innerHash(level[2*i], level[2*i+1])
			} else {
				next[i] = level[2*i]
			}
		}
		t.levels = append(t.levels, next)
		level = next
	}
	return t
}

// Root returns the tree's root.
func (t *Tree) Root() crypto.Digest { return t.levels[len(t.levels)-1][0] }

// Count returns the number of leaves.
func (t *Tree) Count() int { return len(t.levels[0]) }

// Proof returns the sibling hashes from leaf index up to the root, one per
// level where the path's node has a sibling. index must be below Count.
func (t *Tree) Proof(index int) []crypto.Digest {
	var proof []crypto.Digest
	for _, level := range t.levels[:len(t.levels)-1] {
		sibling := index ^ 1
		if sibling < len(level) {
			proof = append(proof, level[sibling])
		}
		index /= 2
	}
	return proof
}

// VerifyProof checks that leaf is the leaf at index of a tree of count
// leaves whose root is root, given proof (Tree.Proof's form). It refuses
// an index at or above count, a count of 0 or above MaxLeaves, and a
// proof with an entry missing or one too many: the result wraps
// ErrBadProof.
func VerifyProof(leaf crypto.Digest, index, count uint64, proof []crypto.Digest, root crypto.Digest) error {
	switch {
	case count == 0 || count > MaxLeaves:
		return fmt.Errorf("%w: leaf count %d (want 1..%d)", ErrBadProof, count, MaxLeaves)
	case index >= count:
		return fmt.Errorf("%w: leaf index %d not below leaf count %d", ErrBadProof, index, count)
	}
	node, used := leaf, 0
	for width := count; width > 1; width = (width + 1) / 2 {
		sibling := index ^ 1
		if sibling < width {
			if used == len(proof) {
				return fmt.Errorf("%w: proof too short (%d entries)", ErrBadProof, len(proof))
			}
			if index%2 == 0 {
				node = innerHash(node, proof[used])
			} else {
				node = innerHash(proof[used], node)
			}
			used++
		}
		index /= 2
	}
	if used != len(proof) {
		return fmt.Errorf("%w: proof has %d entries, the tree's shape wants %d", ErrBadProof, len(proof), used)
	}
	if node != root {
		return fmt.Errorf("%w: the proof leads to another root", ErrBadProof)
	}
	return nil
}
