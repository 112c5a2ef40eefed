package crypto

import "encoding/binary"

// DomainReceipt signs a replica's receipt statement about one executed
// batch (ReceiptStatement): the signature a wire.ReplyReceipt carries.
const DomainReceipt = "pbftnode/v1/receipt"

// ReceiptStatement returns the payload a replica signs under DomainReceipt
// once per executed batch:
//
//	uvarint(sequence) || stateDigest (32 bytes) || resultsRoot (32 bytes)
//
// where stateDigest is the executor's state digest after the batch and
// resultsRoot the root of the batch's results tree (package receipt). The
// cluster id is mixed in by SignedBytes (Signer.Sign, Verify), so a
// statement signed for one cluster never verifies for another. The two
// digests have a fixed length, so the framing is unambiguous.
func ReceiptStatement(sequence uint64, stateDigest, resultsRoot Digest) []byte {
	out := make([]byte, 0, binary.MaxVarintLen64+2*DigestSize)
	out = binary.AppendUvarint(out, sequence)
	out = append(out, stateDigest[:]...)
	return append(out, resultsRoot[:]...)
}

// DomainReceiptEpoch signs a receipt statement about a batch executed in
// a configuration epoch after the genesis (ReceiptEpochStatement). Epoch 0
// keeps DomainReceipt and ReceiptStatement, so receipts of a cluster that
// never reconfigured are unchanged.
const DomainReceiptEpoch = "pbftnode/v1/receipt-epoch"

// ReceiptEpochStatement returns the payload a replica signs under
// DomainReceiptEpoch once per batch it executed in epoch (above 0):
//
//	uvarint(epoch) || ReceiptStatement(sequence, stateDigest, resultsRoot)
//
// Binding the epoch means a signature counts only with the keys of the
// configuration that executed the batch: a verifier looks the signers up
// in that epoch's configuration, proven by the certificate chain.
func ReceiptEpochStatement(epoch, sequence uint64, stateDigest, resultsRoot Digest) []byte {
	out := make([]byte, 0, 2*binary.MaxVarintLen64+2*DigestSize)
	out = binary.AppendUvarint(out, epoch)
	out = binary.AppendUvarint(out, sequence)
	out = append(out, stateDigest[:]...)
	return append(out, resultsRoot[:]...)
}
