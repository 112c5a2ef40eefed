package replica

import (
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

// Bounds of the recent receipts a driver keeps for retransmitted requests
// (Config.Receipts): the receipts of at most this many batches and bytes.
const (
	ReceiptCacheBatches = 256
	ReceiptCacheBytes   = 16 << 20
)

// receiptKey names one request.
type receiptKey struct {
	client string
	number uint64
}

// receiptBatch is one cached batch's receipts: their keys and their size.
type receiptBatch struct {
	sequence uint64
	keys     []receiptKey
	bytes    int
}

// receiptCache keeps the receipts of the last batches, bounded in count
// (ReceiptCacheBatches) and bytes (ReceiptCacheBytes), oldest evicted
// first, so a reply from the executor's reply cache can carry its
// receipt while its batch is recent. A later batch that answers the same
// request again (a duplicate in it) replaces the entry.
type receiptCache struct {
	byRequest map[receiptKey]*wire.ReplyReceipt
	batches   []receiptBatch
	bytes     int
}

// receiptSize approximates the memory one cached receipt holds.
func receiptSize(clientID []byte, rr *wire.ReplyReceipt) int {
	return 128 + len(clientID) + len(rr.Proof)*(crypto.DigestSize+24)
}

// add caches the receipts of the batch at sequence, one per reply, and
// evicts the oldest batches beyond the bounds (the newest always stays).
func (c *receiptCache) add(sequence uint64, replies []execution.Reply, receipts []*wire.ReplyReceipt) {
	if c.byRequest == nil {
		c.byRequest = make(map[receiptKey]*wire.ReplyReceipt)
	}
	b := receiptBatch{sequence: sequence, keys: make([]receiptKey, len(replies))}
	for i := range replies {
		k := receiptKey{client: string(replies[i].ClientID), number: replies[i].RequestNumber}
		b.keys[i] = k
		b.bytes += receiptSize(replies[i].ClientID, receipts[i])
		c.byRequest[k] = receipts[i]
	}
	c.batches = append(c.batches, b)
	c.bytes += b.bytes
	for len(c.batches) > ReceiptCacheBatches || (c.bytes > ReceiptCacheBytes && len(c.batches) > 1) {
		old := c.batches[0]
		c.batches[0] = receiptBatch{}
		c.batches = c.batches[1:]
		c.bytes -= old.bytes
		for _, k := range old.keys {
			// A later batch may hold a newer receipt for the key: keep it.
			if rr := c.byRequest[k]; rr != nil && rr.Sequence == old.sequence {
				delete(c.byRequest, k)
			}
		}
	}
}

// lookup returns the cached receipt of a request, or nil.
func (c *receiptCache) lookup(clientID []byte, number uint64) *wire.ReplyReceipt {
	return c.byRequest[receiptKey{client: string(clientID), number: number}]
}

// signReceipts builds and signs the receipts of one executed batch's
// replies (receipt.SignBatch) and caches them; nil when receipts are off
// or the batch produced no reply.
func (d *Driver) signReceipts(sequence uint64, replies []execution.Reply) []*wire.ReplyReceipt {
	if !d.cfg.Receipts || len(replies) == 0 {
		return nil
	}
	leaves := make([]crypto.Digest, len(replies))
	for i := range replies {
		r := &replies[i]
		leaves[i] = receipt.LeafHash(r.ClientID, r.RequestNumber, r.Result)
	}
	receipts := receipt.SignBatch(d.cfg.Core.Signer, sequence, d.exec.StateDigest(), leaves)
	d.receipts.add(sequence, replies, receipts)
	return receipts
}
