package replica

import (
	"bytes"
	"hash/maphash"
	"slices"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

// ReceiptMode says whether a driver signs receipts and which replies
// carry them.
type ReceiptMode int

const (
	// ReceiptsOff: no signing, replies carry no receipt.
	ReceiptsOff ReceiptMode = iota
	// ReceiptsInReplies: the driver signs a receipt statement once per
	// executed batch that holds a request asking for a receipt
	// (wire.Request.receipt; package receipt) and attaches to the reply
	// of each request that asked its wire.ReplyReceipt; it keeps the
	// last signed batches' receipts (ReceiptCacheBatches,
	// ReceiptCacheBytes) for replies from the executor's reply cache.
	ReceiptsInReplies
	// ReceiptsCachedOnly signs and keeps the receipts the same way but
	// attaches them only to replies from the reply cache (a retransmitted
	// request), not to a batch's first replies: replies to clients that
	// want no receipt stay small, and a client that wants one asks again
	// once the result is in (client.InvokeWithReceipt does), at the cost
	// of a round trip.
	ReceiptsCachedOnly
)

// Bounds of the recent receipts a driver keeps for retransmitted requests
// (Config.Receipts): the receipts of at most this many batches and bytes.
const (
	ReceiptCacheBatches = 256
	ReceiptCacheBytes   = 16 << 20
)

// receiptKey names one request: its number and a seeded hash of its
// client id (no allocation per entry). Two requests whose keys collide
// (chance about 2^-64 per pair) share an entry; the worst outcome is a
// reply carrying another request's receipt, which the client's check of
// the proof rejects, as it would any bogus receipt.
type receiptKey struct {
	client uint64
	number uint64
}

// receiptKeySize is the size of a receiptKey.
const receiptKeySize = 16

// receiptRef is where a request's receipt is: its batch and leaf.
type receiptRef struct {
	batch *receipt.SignedBatch
	leaf  int
}

// receiptBatch is one cached batch: its signed tree, its requests' keys
// and its size.
type receiptBatch struct {
	signed *receipt.SignedBatch
	keys   []receiptKey
	bytes  int
}

// receiptCache keeps the signed trees of the last batches, bounded in
// count (ReceiptCacheBatches) and bytes (ReceiptCacheBytes), oldest
// evicted first, so a reply from the executor's reply cache can carry its
// receipt (built again from the tree) while its batch is recent. A later
// batch that answers the same request again (a duplicate in it) replaces
// the entry.
type receiptCache struct {
	seed      maphash.Seed
	byRequest map[receiptKey]receiptRef
	batches   []receiptBatch
	bytes     int
	// maxBatches and maxBytes are the bounds (0: ReceiptCacheBatches,
	// ReceiptCacheBytes).
	maxBatches, maxBytes int
}

// add caches the signed batch whose leaves are replies, and evicts the
// oldest batches beyond the bounds (the newest always stays).
func (c *receiptCache) add(signed *receipt.SignedBatch, replies []execution.Reply) {
	if c.byRequest == nil {
		c.seed = maphash.MakeSeed()
		c.byRequest = make(map[receiptKey]receiptRef)
	}
	if c.maxBatches == 0 {
		c.maxBatches, c.maxBytes = ReceiptCacheBatches, ReceiptCacheBytes
	}
	b := receiptBatch{signed: signed, keys: make([]receiptKey, len(replies))}
	b.bytes = signed.Bytes() + len(replies)*receiptKeySize
	for i := range replies {
		k := c.key(replies[i].ClientID, replies[i].RequestNumber)
		b.keys[i] = k
		c.byRequest[k] = receiptRef{batch: signed, leaf: i}
	}
	c.batches = append(c.batches, b)
	c.bytes += b.bytes
	for len(c.batches) > c.maxBatches || (c.bytes > c.maxBytes && len(c.batches) > 1) {
		old := c.batches[0]
		c.batches[0] = receiptBatch{}
		c.batches = c.batches[1:]
		c.bytes -= old.bytes
		for _, k := range old.keys {
			// A later batch may hold a newer receipt for the key: keep it.
			if ref, ok := c.byRequest[k]; ok && ref.batch == old.signed {
				delete(c.byRequest, k)
			}
		}
	}
}

// lookup returns the receipt of a request of a cached batch, or nil.
func (c *receiptCache) lookup(clientID []byte, number uint64) *wire.ReplyReceipt {
	if c.byRequest == nil {
		return nil // nothing cached yet (or receipts off): no seed either
	}
	ref, ok := c.byRequest[c.key(clientID, number)]
	if !ok {
		return nil
	}
	return ref.batch.Receipt(ref.leaf)
}

func (c *receiptCache) key(clientID []byte, number uint64) receiptKey {
	return receiptKey{client: maphash.Bytes(c.seed, clientID), number: number}
}

// signReceipts signs one executed batch's results tree (receipt.Sign)
// and caches it when at least one of the batch's requests asks for a
// receipt (wire.Request.receipt); a batch whose requests ask for none
// costs no signature, no tree and no cache entry. It returns the replies'
// receipts when they go in the first replies (ReceiptsInReplies): the
// receipt of a reply whose request asked, nil for the others; else nil.
func (d *Driver) signReceipts(sequence uint64, requests []*wire.Request, replies []execution.Reply) []*wire.ReplyReceipt {
	if d.cfg.Receipts == ReceiptsOff || len(replies) == 0 || !slices.ContainsFunc(requests, (*wire.Request).GetReceipt) {
		return nil
	}
	leaves := make([]crypto.Digest, len(replies))
	for i := range replies {
		r := &replies[i]
		leaves[i] = receipt.LeafHash(r.ClientID, r.RequestNumber, r.Result)
	}
	signed := receipt.Sign(d.cfg.Core.Signer, d.Epoch(), sequence, d.exec.StateDigest(), leaves)
	d.receipts.add(signed, replies)
	if d.cfg.Receipts != ReceiptsInReplies {
		return nil
	}
	receipts := make([]*wire.ReplyReceipt, len(replies))
	for i, asked := range repliesAsking(requests, replies) {
		if asked {
			receipts[i] = signed.Receipt(i)
		}
	}
	return receipts
}

// repliesAsking reports, for each reply of a batch, whether its request
// asked for a receipt (see repliesWhose).
func repliesAsking(requests []*wire.Request, replies []execution.Reply) []bool {
	return repliesWhose(requests, replies, (*wire.Request).GetReceipt)
}

// repliesWhose reports, for each reply of a batch, whether its request
// satisfies pred. The executor answers the requests in their order,
// skipping some (package execution, Executor.Apply), so the replies are a
// subsequence of the requests: each reply is its next request with the
// same client and number.
func repliesWhose(requests []*wire.Request, replies []execution.Reply, pred func(*wire.Request) bool) []bool {
	asked := make([]bool, len(replies))
	j := 0
	for i := range replies {
		r := &replies[i]
		for j < len(requests) && (requests[j].GetRequestNumber() != r.RequestNumber || !bytes.Equal(requests[j].GetClientId(), r.ClientID)) {
			j++
		}
		if j == len(requests) {
			break // not a subsequence (a batch runner that reorders): false
		}
		asked[i] = pred(requests[j])
		j++
	}
	return asked
}
