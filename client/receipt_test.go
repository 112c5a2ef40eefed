package client

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

const receiptTestCluster = "receipt-test"

// receiptHarness is a test client of 4 replicas with known keys whose
// sends are captured, so a test feeds InvokeWithReceipt the replies (and
// receipts) it wants in the order it wants.
type receiptHarness struct {
	c       *Client
	signers []*crypto.Signer
	cluster config.ClusterFile
	sent    chan struct{}
}

func newReceiptHarness(t *testing.T) *receiptHarness {
	t.Helper()
	c := newTestClient(t, 64)
	var seed [ed25519.SeedSize]byte
	seed[0] = 7
	c.cfg.ClusterID, c.cfg.RetransmitTimeout, c.cfg.HintTimeout = receiptTestCluster, testDeadline, testDeadline
	c.signer = crypto.NewSigner(ed25519.NewKeyFromSeed(seed[:]), receiptTestCluster)
	h := &receiptHarness{c: c, sent: make(chan struct{}, 16), cluster: config.ClusterFile{ClusterID: receiptTestCluster}}
	c.send = func(uint32, []byte) bool {
		select {
		case h.sent <- struct{}{}:
		default:
		}
		return true
	}
	keys := make(map[uint32]ed25519.PublicKey)
	for i := range 4 {
		var s [ed25519.SeedSize]byte
		s[0], s[1] = 9, byte(i)
		key := ed25519.NewKeyFromSeed(s[:])
		h.signers = append(h.signers, crypto.NewSigner(key, receiptTestCluster))
		keys[uint32(i)] = key.Public().(ed25519.PublicKey)
		h.cluster.Replicas = append(h.cluster.Replicas, config.ReplicaRecord{
			Index: uint32(i), PublicKey: hex.EncodeToString(keys[uint32(i)]), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 21000+i),
		})
	}
	c.mu.Lock()
	c.receiptKeys, c.receiptKeysEpoch = keys, c.cfg.Epoch
	c.mu.Unlock()
	return h
}

// reply is replica from's reply to request number with result, carrying
// the receipt signer makes for a one-request batch at sequence 5.
func (h *receiptHarness) reply(t *testing.T, from int, signer *crypto.Signer, number uint64, result []byte) *wire.Reply {
	leaf := receipt.LeafHash(h.c.id, number, result)
	rr := receipt.SignBatch(signer, 0, 5, crypto.Digest{1}, []crypto.Digest{leaf})[0]
	return &wire.Reply{ClientId: h.c.id, RequestNumber: number, Replica: uint32(from), Result: result, Receipt: rr}
}

// invoke starts InvokeWithReceipt and returns its request number once its
// request is sent, and where its outcome arrives.
func (h *receiptHarness) invoke(t *testing.T, ctx context.Context) (uint64, chan error, *[]byte, **receipt.Receipt) {
	t.Helper()
	done := make(chan error, 1)
	var raw []byte
	var r *receipt.Receipt
	go func() {
		var err error
		raw, r, err = h.c.InvokeWithReceipt(ctx, execution.EncodePut([]byte("k"), []byte("v")))
		done <- err
	}()
	<-h.sent
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	for n := range h.c.outstanding {
		return n, done, &raw, &r
	}
	t.Fatal("no outstanding request after a send")
	return 0, nil, nil, nil
}

// TestByzantineReceiptIsNotHandedOut: the first reply is a Byzantine
// replica's with the agreed result and a receipt over the honest
// statement but a bad signature; the receipt the client returns must not
// hold it (it verifies), though the result is agreed at once.
func TestByzantineReceiptIsNotHandedOut(t *testing.T) {
	h := newReceiptHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	number, done, _, rec := h.invoke(t, ctx)
	result := []byte{0x08, 0x01}
	bad := h.reply(t, 3, h.signers[3], number, result)
	bad.Receipt.Signature[0] ^= 0xff
	h.c.handleReply(replyFrame(t, 3, bad))
	// Replica 3 signs with replica 2's key: a valid signature, by the
	// wrong replica.
	h.c.handleReply(replyFrame(t, 3, h.reply(t, 3, h.signers[2], number, result)))
	h.c.handleReply(replyFrame(t, 0, h.reply(t, 0, h.signers[0], number, result)))
	h.c.handleReply(replyFrame(t, 1, h.reply(t, 1, h.signers[1], number, result)))
	if err := <-done; err != nil {
		t.Fatalf("InvokeWithReceipt: %v", err)
	}
	if err := receipt.Verify(*rec, h.cluster); err != nil {
		t.Fatalf("the receipt handed out does not verify: %v", err)
	}
	if got := (*rec).Signers(); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("signers %v, want [0 1]", got)
	}
	if got := h.c.ReceiptsRejected(); got != 2 {
		t.Fatalf("ReceiptsRejected %d, want 2 (the bad signature, the wrong replica's key)", got)
	}
}

// TestReceiptOfAnotherResultIsNotCounted: a Byzantine replica's validly
// signed receipt of another result does not count toward the agreed
// result's receipt; with only one honest receipt the context's end
// returns the result and ErrIncompleteReceipt.
func TestReceiptOfAnotherResultIsNotCounted(t *testing.T) {
	h := newReceiptHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	number, done, raw, rec := h.invoke(t, ctx)
	result := []byte{0x08, 0x01}
	h.c.handleReply(replyFrame(t, 0, h.reply(t, 0, h.signers[0], number, result)))
	h.c.handleReply(replyFrame(t, 3, h.reply(t, 3, h.signers[3], number, []byte{0x08, 0x00})))
	// Replica 1 answers the same result without a receipt (receipts off).
	h.c.handleReply(replyFrame(t, 1, &wire.Reply{ClientId: h.c.id, RequestNumber: number, Replica: 1, Result: result}))
	select {
	case err := <-done:
		t.Fatalf("returned with one valid receipt: %v", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, ErrIncompleteReceipt) {
		t.Fatalf("InvokeWithReceipt: %v, want ErrIncompleteReceipt", err)
	}
	if string(*raw) != string(result) {
		t.Fatalf("result %x, want %x", *raw, result)
	}
	if err := receipt.Verify(*rec, h.cluster); !errors.Is(err, receipt.ErrTooFewSigners) {
		t.Fatalf("partial receipt: %v, want ErrTooFewSigners", err)
	}
}

// TestParseReplyFastReceipts: a reply's receipt passes the fast path
// only when proto.Unmarshal would decode it the same; a malformed,
// repeated or unusual one goes to proto.Unmarshal.
func TestParseReplyFastReceipts(t *testing.T) {
	rr := receipt.SignBatch(crypto.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)), "c"), 0, 3, crypto.Digest{1},
		[]crypto.Digest{{1}, {2}, {3}})[1]
	enc, err := proto.Marshal(rr)
	if err != nil {
		t.Fatal(err)
	}
	good, err := proto.Marshal(&wire.Reply{RequestNumber: 7, Result: []byte("ok"), Receipt: rr})
	if err != nil {
		t.Fatal(err)
	}
	withReceipt := func(b []byte) []byte {
		out := protowire.AppendVarint(protowire.AppendTag(nil, replyNumber, protowire.VarintType), 7)
		return protowire.AppendBytes(protowire.AppendTag(out, replyReceipt, protowire.BytesType), b)
	}
	cases := []struct {
		name string
		data []byte
		fast bool
	}{
		{"marshalled", good, true},
		{"truncated receipt", withReceipt(enc[:len(enc)-3]), false},
		{"unknown field in receipt", withReceipt(protowire.AppendVarint(protowire.AppendTag(append([]byte{}, enc...), 40, protowire.VarintType), 1)), false},
		{"receipt twice", append(withReceipt(enc), protowire.AppendBytes(protowire.AppendTag(nil, replyReceipt, protowire.BytesType), enc)...), false},
		{"receipt field of the wrong type", withReceipt(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{1})), false},
	}
	for _, tc := range cases {
		var fast reply
		if got := parseReplyFast(tc.data, &fast); got != tc.fast {
			t.Fatalf("%s: parseReplyFast accepted=%v, want %v", tc.name, got, tc.fast)
		}
		var m wire.Reply
		uerr := proto.Unmarshal(tc.data, &m)
		var slow reply
		perr := parseReply(tc.data, &slow)
		if (uerr == nil) != (perr == nil) {
			t.Fatalf("%s: parseReply %v, proto.Unmarshal %v", tc.name, perr, uerr)
		}
		if tc.fast {
			var got wire.ReplyReceipt
			if err := proto.Unmarshal(fast.receipt, &got); err != nil || !proto.Equal(&got, m.Receipt) {
				t.Fatalf("%s: fast receipt %v (%v), proto %v", tc.name, &got, err, m.Receipt)
			}
		}
	}
}
