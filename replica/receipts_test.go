package replica

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

// TestRepliesCarryVerifiableReceipts: with Config.Receipts every reply
// carries a receipt that verifies with its replica's key, and all
// replicas sign the same statement for a batch.
func TestRepliesCarryVerifiableReceipts(t *testing.T) {
	c := newTestCluster(t, 4)
	run(t, c, 3)
	statements := make(map[uint64]receipt.Statement)
	for _, r := range c.replicas {
		if len(r.replies) != 3 {
			t.Fatalf("replica %d sent %d replies, want 3", r.id, len(r.replies))
		}
		for _, rep := range r.replies {
			pub := c.keys[r.id].Public().(ed25519.PublicKey)
			st, err := receipt.VerifyReply(pub, testClusterID, rep.ClientId, rep.RequestNumber, rep.Result, rep.Receipt)
			if err != nil {
				t.Fatalf("replica %d request %d: %v", r.id, rep.RequestNumber, err)
			}
			if prev, ok := statements[st.Sequence]; ok && prev != st {
				t.Fatalf("replica %d signed %+v at %d, another replica %+v", r.id, st, st.Sequence, prev)
			}
			statements[st.Sequence] = st
		}
	}
}

// TestCachedReplyOfRecentBatchCarriesReceipt: a retransmitted request
// answered from the reply cache carries its batch's receipt.
func TestCachedReplyOfRecentBatchCarriesReceipt(t *testing.T) {
	c := newTestCluster(t, 4)
	run(t, c, 2)
	r := c.replicas[1]
	first := r.replies[0]
	if err := c.submit(1, c.request(1, "b")); err != nil {
		t.Fatal(err)
	}
	again := r.replies[len(r.replies)-1]
	if again.RequestNumber != 1 || again.Receipt == nil {
		t.Fatalf("cached reply %v: want request 1 with a receipt", again)
	}
	if !proto.Equal(again.Receipt, first.Receipt) {
		t.Fatalf("cached reply's receipt %v, want the batch's %v", again.Receipt, first.Receipt)
	}
}

// TestReceiptCacheIsBounded: the oldest batches' receipts go beyond
// ReceiptCacheBatches batches or ReceiptCacheBytes bytes; a request
// answered again by a later batch keeps the later receipt.
func TestReceiptCacheIsBounded(t *testing.T) {
	var c receiptCache
	batch := func(seq uint64, client string, numbers ...uint64) {
		replies := make([]execution.Reply, len(numbers))
		receipts := make([]*wire.ReplyReceipt, len(numbers))
		for i, n := range numbers {
			replies[i] = execution.Reply{ClientID: []byte(client), RequestNumber: n}
			receipts[i] = &wire.ReplyReceipt{Sequence: seq}
		}
		c.add(seq, replies, receipts)
	}
	batch(1, "a", 1)
	batch(2, "a", 2)
	batch(3, "a", 2) // request 2 again, in a later batch
	for seq := uint64(4); seq <= ReceiptCacheBatches+2; seq++ {
		batch(seq, "b", seq)
	}
	if c.lookup([]byte("a"), 1) != nil {
		t.Fatal("batch 1's receipt outlived the batch bound")
	}
	if rr := c.lookup([]byte("a"), 2); rr == nil || rr.Sequence != 3 {
		t.Fatalf("request 2's receipt %v, want batch 3's", rr)
	}
	if len(c.batches) != ReceiptCacheBatches {
		t.Fatalf("%d batches cached, want %d", len(c.batches), ReceiptCacheBatches)
	}
	// One batch over the byte bound evicts everything older.
	huge := bytes.Repeat([]byte{1}, ReceiptCacheBytes)
	c.add(1000, []execution.Reply{{ClientID: huge, RequestNumber: 1}}, []*wire.ReplyReceipt{{Sequence: 1000}})
	if len(c.batches) != 1 || c.lookup([]byte("a"), 2) != nil || c.lookup(huge, 1) == nil {
		t.Fatalf("after a batch over the byte bound: %d batches cached", len(c.batches))
	}
}
