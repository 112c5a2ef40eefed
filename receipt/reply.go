package receipt

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// Signer signs a payload under a domain: crypto.Signer, or the protocol
// core's signer (which is one).
type Signer interface {
	Sign(domain string, payload []byte) []byte
}

// SignedBatch is one executed batch's signed results tree, from which
// each reply's wire.ReplyReceipt is built (Receipt, Receipts). It is
// immutable once made.
type SignedBatch struct {
	epoch       uint64
	sequence    uint64
	stateDigest crypto.Digest
	root        crypto.Digest
	signature   []byte
	tree        *Tree
}

// Sign is the replica side: it builds the results tree over leaves (one
// per reply of the batch at sequence, executed in configuration epoch
// epoch, in execution order; LeafHash) and signs the statement once with
// signer. No leaves: nil.
func Sign(signer Signer, epoch, sequence uint64, stateDigest crypto.Digest, leaves []crypto.Digest) *SignedBatch {
	if len(leaves) == 0 {
		return nil
	}
	tree := NewTree(leaves)
	root := tree.Root()
	st := Statement{Epoch: epoch, Sequence: sequence, StateDigest: stateDigest, ResultsRoot: root}
	sig := signer.Sign(st.Domain(), st.Payload())
	return &SignedBatch{epoch: epoch, sequence: sequence, stateDigest: stateDigest, root: root, signature: sig, tree: tree}
}

// Len returns the number of leaves (replies) of the batch.
func (b *SignedBatch) Len() int { return b.tree.Count() }

// Bytes approximates the memory the batch holds.
func (b *SignedBatch) Bytes() int {
	n := 0
	for _, level := range b.tree.Levels() {
		n += len(level) * crypto.DigestSize
	}
	return n + 256
}

// Receipt builds leaf i's receipt (i below Len).
func (b *SignedBatch) Receipt(i int) *wire.ReplyReceipt {
	proof := b.tree.Proof(i)
	hashes := make([][]byte, len(proof))
	for j := range proof {
		hashes[j] = proof[j][:]
	}
	return &wire.ReplyReceipt{
		Epoch: b.epoch, Sequence: b.sequence, StateDigest: b.stateDigest[:], ResultsRoot: b.root[:],
		LeafIndex: uint32(i), LeafCount: uint32(b.Len()), Proof: hashes, Signature: b.signature,
	}
}

// Receipts builds every leaf's receipt, in leaf order, with one
// allocation each for the receipts, the proofs' slices and their bytes,
// whatever the batch size: the driver calls it on the event loop.
func (b *SignedBatch) Receipts() []*wire.ReplyReceipt {
	tree, n := b.tree, b.Len()
	levels := tree.Levels()
	depth := len(levels) - 1
	hashes := make([]byte, n*depth*crypto.DigestSize)
	slices := make([][]byte, n*depth)
	receipts := make([]wire.ReplyReceipt, n)
	out := make([]*wire.ReplyReceipt, n)
	used := 0
	for i := range n {
		start := used
		index := i
		for _, level := range levels[:depth] {
			if sibling := index ^ 1; sibling < len(level) {
				h := hashes[used*crypto.DigestSize : (used+1)*crypto.DigestSize : (used+1)*crypto.DigestSize]
				copy(h, level[sibling][:])
				slices[used] = h
				used++
			}
			index /= 2
		}
		rr := &receipts[i]
		rr.Epoch, rr.Sequence, rr.StateDigest, rr.ResultsRoot = b.epoch, b.sequence, b.stateDigest[:], b.root[:]
		rr.LeafIndex, rr.LeafCount, rr.Proof, rr.Signature = uint32(i), uint32(n), slices[start:used:used], b.signature
		out[i] = rr
	}
	return out
}

// SignBatch is Sign(...).Receipts(): every reply's receipt for a batch.
func SignBatch(signer Signer, epoch, sequence uint64, stateDigest crypto.Digest, leaves []crypto.Digest) []*wire.ReplyReceipt {
	b := Sign(signer, epoch, sequence, stateDigest, leaves)
	if b == nil {
		return nil
	}
	return b.Receipts()
}

// VerifyReply checks one replica's receipt on its reply: the digests'
// lengths, that the leaf of (clientID, number, result) is in the results
// root by the proof, and that pub signed the statement for clusterID. pub
// must be the replica's key in the receipt's epoch (rr.Epoch). It
// returns the statement. Every byte of rr comes from the network: it is
// bounded and never trusted.
func VerifyReply(pub ed25519.PublicKey, clusterID string, clientID []byte, number uint64, result []byte, rr *wire.ReplyReceipt) (Statement, error) {
	var st Statement
	var err error
	if rr == nil {
		return st, fmt.Errorf("%w: no receipt", ErrMalformed)
	}
	st.Epoch, st.Sequence = rr.Epoch, rr.Sequence
	if st.StateDigest, err = crypto.DigestFromBytes(rr.StateDigest); err != nil {
		return st, fmt.Errorf("%w: state digest: %w", ErrMalformed, err)
	}
	if st.ResultsRoot, err = crypto.DigestFromBytes(rr.ResultsRoot); err != nil {
		return st, fmt.Errorf("%w: results root: %w", ErrMalformed, err)
	}
	if len(rr.Proof) > 64 {
		return st, fmt.Errorf("%w: proof of %d entries", ErrMalformed, len(rr.Proof))
	}
	proof := make([]crypto.Digest, len(rr.Proof))
	for i, p := range rr.Proof {
		if proof[i], err = crypto.DigestFromBytes(p); err != nil {
			return st, fmt.Errorf("%w: proof[%d]: %w", ErrMalformed, i, err)
		}
	}
	leaf := LeafHash(clientID, number, result)
	if err := VerifyProof(leaf, uint64(rr.LeafIndex), uint64(rr.LeafCount), proof, st.ResultsRoot); err != nil {
		return st, err
	}
	if !crypto.Verify(pub, clusterID, st.Domain(), st.Payload(), rr.Signature) {
		return st, fmt.Errorf("%w: over sequence %d (epoch %d)", ErrBadSignature, st.Sequence, st.Epoch)
	}
	return st, nil
}

// Assemble builds the receipt file for the request (clientID, number)
// whose operation was op and raw result raw, from one verified reply
// receipt rr (its statement, leaf place and proof) and the signatures
// gathered over the same statement (sorted by replica here). history is
// the encoded configuration history (a wire.ConfigHistory) that proves
// the members of rr's epoch; it goes into the receipt when that epoch is
// above 0. It verifies nothing: the caller checked every signature
// (VerifyReply).
func Assemble(clusterID string, clientID []byte, number uint64, op, raw []byte, rr *wire.ReplyReceipt, sigs []Signature, history []byte) *Receipt {
	proof := make([]string, len(rr.Proof))
	for i, p := range rr.Proof {
		proof[i] = hex.EncodeToString(p)
	}
	sigs = slices.Clone(sigs)
	slices.SortFunc(sigs, func(a, b Signature) int { return int(a.Replica) - int(b.Replica) })
	operation := OperationKind(op)
	var encodedHistory string
	if rr.Epoch > 0 {
		encodedHistory = hex.EncodeToString(history)
	}
	return &Receipt{
		Version: Version, ClusterID: clusterID, Sequence: rr.Sequence, Epoch: rr.Epoch, History: encodedHistory,
		StateDigest: hex.EncodeToString(rr.StateDigest), ResultsRoot: hex.EncodeToString(rr.ResultsRoot),
		ClientID: hex.EncodeToString(clientID), RequestNumber: number,
		Operation: operation, Result: FormatResult(operation, raw), RawResult: hex.EncodeToString(raw),
		LeafIndex: rr.LeafIndex, LeafCount: rr.LeafCount, Proof: proof, Signatures: sigs,
	}
}
