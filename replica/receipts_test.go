package replica

import (
	"crypto/ed25519"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

// everyRequest asks for a receipt with every request.
func everyRequest(uint64) bool { return true }

// TestRepliesCarryVerifiableReceipts: with Config.Receipts every reply
// to a request that asks carries a receipt that verifies with its
// replica's key, and all replicas sign the same statement for a batch.
func TestRepliesCarryVerifiableReceipts(t *testing.T) {
	c := newTestCluster(t, 4)
	c.askReceipts = everyRequest
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
	c.askReceipts = everyRequest
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

// TestReceiptsOnlyForRequestsThatAsk: a batch none of whose requests
// asks for a receipt is not signed (no receipt, nothing cached, not even
// for a retransmission); the reply to a request that asks carries one
// that verifies.
func TestReceiptsOnlyForRequestsThatAsk(t *testing.T) {
	c := newTestCluster(t, 4)
	c.askReceipts = func(number uint64) bool { return number == 2 }
	run(t, c, 3)
	for _, r := range c.replicas {
		if len(r.driver.receipts.batches) != 1 {
			t.Fatalf("replica %d cached %d signed batches, want 1 (only request 2 asked)", r.id, len(r.driver.receipts.batches))
		}
		pub := c.keys[r.id].Public().(ed25519.PublicKey)
		for _, rep := range r.replies {
			if rep.RequestNumber != 2 {
				if rep.Receipt != nil {
					t.Fatalf("replica %d: reply to request %d, which asked for none, carries a receipt", r.id, rep.RequestNumber)
				}
				continue
			}
			if _, err := receipt.VerifyReply(pub, testClusterID, rep.ClientId, rep.RequestNumber, rep.Result, rep.Receipt); err != nil {
				t.Fatalf("replica %d: request 2's receipt: %v", r.id, err)
			}
		}
	}
	if err := c.submit(1, c.request(1, "b")); err != nil {
		t.Fatal(err)
	}
	if again := c.replicas[1].replies[len(c.replicas[1].replies)-1]; again.RequestNumber != 1 || again.Receipt != nil {
		t.Fatalf("cached reply %v: want request 1 without a receipt", again)
	}
}

// TestRepliesAsking: each reply is matched to its own request, past the
// requests the executor skipped and with a request answered twice.
func TestRepliesAsking(t *testing.T) {
	req := func(client string, number uint64, ask bool) *wire.Request {
		return &wire.Request{ClientId: []byte(client), RequestNumber: number, Receipt: ask}
	}
	requests := []*wire.Request{req("a", 1, false), req("b", 1, true), req("a", 2, true), req("a", 2, false), req("c", 9, true)}
	replies := []execution.Reply{{ClientID: []byte("b"), RequestNumber: 1}, {ClientID: []byte("a"), RequestNumber: 2}, {ClientID: []byte("a"), RequestNumber: 2}}
	got := repliesAsking(requests, replies)
	if want := []bool{true, true, false}; !slices.Equal(got, want) {
		t.Fatalf("repliesAsking = %v, want %v", got, want)
	}
	if got := repliesAsking(requests[:1], replies); slices.Contains(got, true) {
		t.Fatalf("replies that are no subsequence of the requests: %v, want none asking", got)
	}
}

// TestReceiptCacheIsBounded: the oldest batches' receipts go beyond
// the batch bound or the byte bound; a request answered again by a later
// batch keeps the later receipt.
func TestReceiptCacheIsBounded(t *testing.T) {
	c := receiptCache{maxBatches: 8, maxBytes: 1 << 20}
	signer := crypto.NewSigner(testKey("replica", 0), testClusterID)
	batch := func(seq uint64, client string, numbers ...uint64) {
		replies := make([]execution.Reply, len(numbers))
		leaves := make([]crypto.Digest, len(numbers))
		for i, n := range numbers {
			replies[i] = execution.Reply{ClientID: []byte(client), RequestNumber: n}
			leaves[i] = receipt.LeafHash(replies[i].ClientID, n, nil)
		}
		c.add(receipt.Sign(signer, 0, seq, crypto.Digest{}, leaves), replies)
	}
	batch(1, "a", 1)
	batch(2, "a", 2)
	batch(3, "a", 2) // request 2 again, in a later batch
	for seq := uint64(4); seq <= 10; seq++ {
		batch(seq, "b", seq)
	}
	if c.lookup([]byte("a"), 1) != nil {
		t.Fatal("batch 1's receipt outlived the batch bound")
	}
	if rr := c.lookup([]byte("a"), 2); rr == nil || rr.Sequence != 3 {
		t.Fatalf("request 2's receipt %v, want batch 3's", rr)
	}
	if len(c.batches) != 8 {
		t.Fatalf("%d batches cached, want 8", len(c.batches))
	}
	// One batch over the byte bound evicts everything older.
	numbers := make([]uint64, (1<<20)/crypto.DigestSize)
	for i := range numbers {
		numbers[i] = uint64(i + 1)
	}
	batch(11, "c", numbers...)
	if len(c.batches) != 1 || c.lookup([]byte("a"), 2) != nil || c.lookup([]byte("c"), 5) == nil {
		t.Fatalf("after a batch over the byte bound: %d batches cached", len(c.batches))
	}
}

// TestReceiptsCachedOnly: in ReceiptsCachedOnly mode a batch's first
// replies carry no receipt; a retransmitted request's cached reply does,
// and it verifies.
func TestReceiptsCachedOnly(t *testing.T) {
	c := newTestCluster(t, 4)
	c.askReceipts = everyRequest
	for _, r := range c.replicas {
		r.driver.cfg.Receipts = ReceiptsCachedOnly
	}
	run(t, c, 2)
	r := c.replicas[2]
	for _, rep := range r.replies {
		if rep.Receipt != nil {
			t.Fatalf("first reply to request %d carries a receipt", rep.RequestNumber)
		}
	}
	if err := c.submit(2, c.request(2, "c")); err != nil {
		t.Fatal(err)
	}
	again := r.replies[len(r.replies)-1]
	pub := c.keys[r.id].Public().(ed25519.PublicKey)
	if _, err := receipt.VerifyReply(pub, testClusterID, again.ClientId, again.RequestNumber, again.Result, again.Receipt); err != nil {
		t.Fatalf("cached reply's receipt: %v", err)
	}
}

// TestReceiptsOffCachedReply: with receipts off, a retransmitted
// request is answered from the reply cache without a receipt (and the
// empty receipt cache is not touched).
func TestReceiptsOffCachedReply(t *testing.T) {
	c := newTestCluster(t, 4)
	for _, r := range c.replicas {
		r.driver.cfg.Receipts = ReceiptsOff
	}
	run(t, c, 1)
	r := c.replicas[1]
	if err := c.submit(1, c.request(1, "b")); err != nil {
		t.Fatal(err)
	}
	if again := r.replies[len(r.replies)-1]; again.RequestNumber != 1 || again.Receipt != nil {
		t.Fatalf("cached reply %v: want request 1 without a receipt", again)
	}
}
