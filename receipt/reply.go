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

// SignBatch is the replica side: it builds the results tree over leaves
// (one per reply of the batch at sequence, in execution order; LeafHash),
// signs the statement once with signer, and returns each leaf's
// wire.ReplyReceipt (sharing the digests and the signature). No leaves:
// nil.
func SignBatch(signer Signer, sequence uint64, stateDigest crypto.Digest, leaves []crypto.Digest) []*wire.ReplyReceipt {
	if len(leaves) == 0 {
		return nil
	}
	tree := NewTree(leaves)
	root := tree.Root()
	sig := signer.Sign(crypto.DomainReceipt, crypto.ReceiptStatement(sequence, stateDigest, root))
	out := make([]*wire.ReplyReceipt, len(leaves))
	for i := range leaves {
		proof := tree.Proof(i)
		hashes := make([][]byte, len(proof))
		for j := range proof {
			hashes[j] = proof[j][:]
		}
		out[i] = &wire.ReplyReceipt{
			Sequence: sequence, StateDigest: stateDigest[:], ResultsRoot: root[:],
			LeafIndex: uint32(i), LeafCount: uint32(len(leaves)), Proof: hashes, Signature: sig,
		}
	}
	return out
}

// VerifyReply checks one replica's receipt on its reply: the digests'
// lengths, that the leaf of (clientID, number, result) is in the results
// root by the proof, and that pub signed the statement for clusterID. It
// returns the statement. Every byte of rr comes from the network: it is
// bounded and never trusted.
func VerifyReply(pub ed25519.PublicKey, clusterID string, clientID []byte, number uint64, result []byte, rr *wire.ReplyReceipt) (Statement, error) {
	var st Statement
	var err error
	if rr == nil {
		return st, fmt.Errorf("%w: no receipt", ErrMalformed)
	}
	st.Sequence = rr.Sequence
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
	if !crypto.Verify(pub, clusterID, crypto.DomainReceipt, st.Payload(), rr.Signature) {
		return st, fmt.Errorf("%w: over sequence %d", ErrBadSignature, st.Sequence)
	}
	return st, nil
}

// Assemble builds the receipt file for the request (clientID, number)
// whose operation was op and raw result raw, from one verified reply
// receipt rr (its statement, leaf place and proof) and the signatures
// gathered over the same statement (sorted by replica here). It verifies
// nothing: the caller checked every signature (VerifyReply).
func Assemble(clusterID string, clientID []byte, number uint64, op, raw []byte, rr *wire.ReplyReceipt, sigs []Signature) *Receipt {
	proof := make([]string, len(rr.Proof))
	for i, p := range rr.Proof {
		proof[i] = hex.EncodeToString(p)
	}
	sigs = slices.Clone(sigs)
	slices.SortFunc(sigs, func(a, b Signature) int { return int(a.Replica) - int(b.Replica) })
	operation := OperationKind(op)
	return &Receipt{
		Version: Version, ClusterID: clusterID, Sequence: rr.Sequence,
		StateDigest: hex.EncodeToString(rr.StateDigest), ResultsRoot: hex.EncodeToString(rr.ResultsRoot),
		ClientID: hex.EncodeToString(clientID), RequestNumber: number,
		Operation: operation, Result: FormatResult(operation, raw), RawResult: hex.EncodeToString(raw),
		LeafIndex: rr.LeafIndex, LeafCount: rr.LeafCount, Proof: proof, Signatures: sigs,
	}
}
