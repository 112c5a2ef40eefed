package crypto

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// MaxMerkleLeaves bounds the leaves of a Merkle tree (and so a proof's
// length) that VerifyMerkleProof accepts: far above any batch or bundle.
const MaxMerkleLeaves = 1 << 20

// ErrBadMerkleProof: an inclusion proof does not lead from its leaf to the
// root (wrong sibling, index, count or length).
var ErrBadMerkleProof = errors.New("crypto: Merkle inclusion proof does not lead to the root")

// MerkleTree is a binary Merkle tree built level by level from its leaves
// in order, its inner nodes hashed under one domain (the tree's purpose:
// receipts, request bundles). At each level nodes 2i and 2i+1 are hashed
// into node i of the next level; when a level has an odd number of nodes,
// its last node is promoted to the next level unchanged (it is not hashed
// with itself, and its proof has no entry for that level). The root of a
// single leaf is the leaf. The shape is a function of the leaf count
// alone, so (index, count) fixes which proof entries exist and on which
// side each sibling is. Leaves must be hashed under a domain of their own,
// so that no leaf can pass for an inner node.
type MerkleTree struct {
	domain string
	// levels[0] are the leaves, the last level holds the root.
	levels [][]Digest
}

// MerkleInner is an inner node: SHA-256(domain || left || right).
func MerkleInner(domain string, left, right Digest) Digest {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(left[:])
	h.Write(right[:])
	var d Digest
	h.Sum(d[:0])
	return d
}

// NewMerkleTree builds the tree over leaves (at least one; they are not
// copied) with inner nodes hashed under domain. It panics on none: every
// caller builds a tree over something it holds.
func NewMerkleTree(domain string, leaves []Digest) *MerkleTree {
	if len(leaves) == 0 {
		panic("crypto: NewMerkleTree with no leaves")
	}
	t := &MerkleTree{domain: domain, levels: [][]Digest{leaves}}
	for level := leaves; len(level) > 1; {
		next := make([]Digest, (len(level)+1)/2)
		for i := range next {
			if 2*i+1 < len(level) {
				next[i] = MerkleInner(domain, level[2*i], level[2*i+1])
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
func (t *MerkleTree) Root() Digest { return t.levels[len(t.levels)-1][0] }

// Count returns the number of leaves.
func (t *MerkleTree) Count() int { return len(t.levels[0]) }

// Levels returns the tree's levels, the leaves first and the root last,
// for callers that lay many proofs out at once. They must not be modified.
func (t *MerkleTree) Levels() [][]Digest { return t.levels }

// Proof returns the sibling hashes from leaf index up to the root, one per
// level where the path's node has a sibling. index must be below Count.
func (t *MerkleTree) Proof(index int) []Digest {
	var proof []Digest
	for _, level := range t.levels[:len(t.levels)-1] {
		sibling := index ^ 1
		if sibling < len(level) {
			proof = append(proof, level[sibling])
		}
		index /= 2
	}
	return proof
}

// MerkleProofLen is the number of entries Proof gives for leaf index of a
// tree of count leaves (0 for an index at or above count).
func MerkleProofLen(index, count uint64) int {
	if index >= count {
		return 0
	}
	n := 0
	for width := count; width > 1; width = (width + 1) / 2 {
		if index^1 < width {
			n++
		}
		index /= 2
	}
	return n
}

// MerkleRootOf returns the root that leaf at index of a tree of count
// leaves leads to through proof (MerkleTree.Proof's form), inner nodes
// hashed under domain. It refuses an index at or above count, a count of
// 0 or above MaxMerkleLeaves, and a proof with an entry missing or one too
// many: the error wraps ErrBadMerkleProof.
func MerkleRootOf(domain string, leaf Digest, index, count uint64, proof []Digest) (Digest, error) {
	return merkleRootOf(domain, leaf, index, count, proof, nil)
}

// merkleRootOf is MerkleRootOf, its inner nodes hashed through memo (nil:
// none remembered).
func merkleRootOf(domain string, leaf Digest, index, count uint64, proof []Digest, memo *RequestChecker) (Digest, error) {
	switch {
	case count == 0 || count > MaxMerkleLeaves:
		return Digest{}, fmt.Errorf("%w: leaf count %d (want 1..%d)", ErrBadMerkleProof, count, MaxMerkleLeaves)
	case index >= count:
		return Digest{}, fmt.Errorf("%w: leaf index %d not below leaf count %d", ErrBadMerkleProof, index, count)
	}
	if want := MerkleProofLen(index, count); len(proof) != want {
		return Digest{}, fmt.Errorf("%w: proof has %d entries, the tree's shape wants %d", ErrBadMerkleProof, len(proof), want)
	}
	node, used := leaf, 0
	for level, width := 0, count; width > 1; level, width = level+1, (width+1)/2 {
		if index^1 < width {
			if index%2 == 0 {
				node = memo.inner(domain, level, node, proof[used])
			} else {
				node = memo.inner(domain, level, proof[used], node)
			}
			used++
		}
		index /= 2
	}
	return node, nil
}

// VerifyMerkleProof checks that leaf is the leaf at index of a tree of
// count leaves whose root is root (MerkleRootOf's checks, then the root).
func VerifyMerkleProof(domain string, leaf Digest, index, count uint64, proof []Digest, root Digest) error {
	got, err := MerkleRootOf(domain, leaf, index, count, proof)
	if err != nil {
		return err
	}
	if got != root {
		return fmt.Errorf("%w: the proof leads to another root", ErrBadMerkleProof)
	}
	return nil
}
