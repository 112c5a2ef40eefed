// Package receipt makes and checks verifiable receipts (issue 19): proof,
// checkable offline with the cluster's public keys, that a cluster
// executed a request with a result at a sequence.
//
// A PBFT replica, once per executed batch, builds a results tree (Tree)
// over the leaves of the batch's replies in execution order (LeafHash),
// signs the statement crypto.ReceiptStatement(sequence, state digest,
// root) under crypto.DomainReceipt (SignBatch), and attaches to each
// reply a wire.ReplyReceipt with the leaf's proof. A client checks each
// reply's receipt as it arrives (VerifyReply), gathers f+1 signatures
// over one statement that include its result, and writes a Receipt
// (Assemble), which Verify checks against a config.ClusterFile. The
// format and what a receipt proves are in docs/receipts.md.
package receipt
