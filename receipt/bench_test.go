package receipt

import (
	"crypto/ed25519"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// BenchmarkSignBatch is the replica's receipt work for a batch of 200
// replies: leaves, tree, one signature, the receipts; and encoding them
// in replies.
func BenchmarkSignBatch(b *testing.B) {
	var seed [ed25519.SeedSize]byte
	signer := crypto.NewSigner(ed25519.NewKeyFromSeed(seed[:]), "bench")
	client := make([]byte, 40)
	result := []byte{0x08, 0x01}
	b.ReportAllocs()
	for b.Loop() {
		leaves := make([]crypto.Digest, 200)
		for i := range leaves {
			leaves[i] = LeafHash(client, uint64(i), result)
		}
		rrs := SignBatch(signer, 0, 1, crypto.Digest{}, leaves)
		for _, rr := range rrs {
			_, _ = proto.Marshal(&wire.Reply{ClientId: client, RequestNumber: 1, Result: result, Receipt: rr})
		}
	}
}

// BenchmarkSignBatchOnly is SignBatch alone for 200 leaves: the tree,
// the signature and the receipts.
func BenchmarkSignBatchOnly(b *testing.B) {
	var seed [ed25519.SeedSize]byte
	signer := crypto.NewSigner(ed25519.NewKeyFromSeed(seed[:]), "bench")
	client := make([]byte, 40)
	result := []byte{0x08, 0x01}
	leaves := make([]crypto.Digest, 200)
	for i := range leaves {
		leaves[i] = LeafHash(client, uint64(i), result)
	}
	b.ReportAllocs()
	for b.Loop() {
		SignBatch(signer, 0, 1, crypto.Digest{}, leaves)
	}
}
