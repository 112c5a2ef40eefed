package receipt

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
)

func testLeaves(n int) []crypto.Digest {
	leaves := make([]crypto.Digest, n)
	for i := range leaves {
		leaves[i] = LeafHash([]byte(fmt.Sprintf("client-%d", i)), uint64(i+1), []byte{byte(i)})
	}
	return leaves
}

func TestEveryLeafOfEveryTreeVerifies(t *testing.T) {
	for n := 1; n <= 33; n++ {
		leaves := testLeaves(n)
		tree := NewTree(leaves)
		for i := range leaves {
			if err := VerifyProof(leaves[i], uint64(i), uint64(n), tree.Proof(i), tree.Root()); err != nil {
				t.Fatalf("n=%d leaf %d: %v", n, i, err)
			}
		}
	}
}

func TestSingleLeafTreeRootIsTheLeaf(t *testing.T) {
	leaves := testLeaves(1)
	if root := NewTree(leaves).Root(); root != leaves[0] {
		t.Fatalf("root %v, want the leaf %v", root, leaves[0])
	}
}

func TestWrongProofsFail(t *testing.T) {
	for n := 2; n <= 33; n++ {
		leaves := testLeaves(n)
		tree := NewTree(leaves)
		root := tree.Root()
		for i := range leaves {
			proof := tree.Proof(i)
			expectBad := func(what string, leaf crypto.Digest, index, count uint64, p []crypto.Digest) {
				t.Helper()
				if err := VerifyProof(leaf, index, count, p, root); !errors.Is(err, ErrBadProof) {
					t.Fatalf("n=%d leaf %d, %s: got %v, want ErrBadProof", n, i, what, err)
				}
			}
			for j := range proof {
				bad := append([]crypto.Digest{}, proof...)
				bad[j][0] ^= 1
				expectBad(fmt.Sprintf("sibling %d flipped", j), leaves[i], uint64(i), uint64(n), bad)
			}
			expectBad("other leaf", leaves[(i+1)%n], uint64(i), uint64(n), proof)
			expectBad("index+1", leaves[i], uint64(i+1), uint64(n), proof)
			if i > 0 {
				expectBad("index-1", leaves[i], uint64(i-1), uint64(n), proof)
			}
			expectBad("index = count", leaves[i], uint64(n), uint64(n), proof)
			expectBad("count 0", leaves[i], uint64(i), 0, proof)
			expectBad("one entry too many", leaves[i], uint64(i), uint64(n), append(append([]crypto.Digest{}, proof...), root))
			if len(proof) > 0 {
				expectBad("last entry missing", leaves[i], uint64(i), uint64(n), proof[:len(proof)-1])
			}
			// A count whose tree has another shape along this path.
			if other := uint64(n) * 2; len(NewTree(testLeaves(int(other))).Proof(i)) != len(proof) {
				expectBad("count doubled", leaves[i], uint64(i), other, proof)
			}
		}
	}
}

func TestLeafAndInnerHashesAreDomainSeparated(t *testing.T) {
	// The same 64 input bytes never give the same hash as a leaf and as
	// an inner node: the domains differ.
	if LeafHash(nil, 0, nil) == crypto.MerkleInner(innerDomain, crypto.Digest{}, crypto.Digest{}) {
		t.Fatal("leaf and inner hashes share a domain")
	}
}
