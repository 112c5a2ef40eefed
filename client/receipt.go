package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

// ErrIncompleteReceipt: the operation was executed (its result is
// returned) but ctx ended before f+1 replicas' valid receipts over one
// statement arrived; the receipt returned, if any, holds fewer signatures
// and does not verify.
var ErrIncompleteReceipt = errors.New("receipt incomplete")

// ErrNoReceipts: the cluster does not sign receipts (the Raft mode's
// client, with ReplyQuorum 1).
var ErrNoReceipts = errors.New("client: receipts need a PBFT cluster (f+1 matching replies)")

// receiptReply is a copy of one reply that carried a receipt.
type receiptReply struct {
	replica uint32
	result  []byte
	receipt []byte
}

// offerReceiptLocked hands a copy of r to cl's receipt collector when it
// carries a receipt and a result. The channel holds 2n replies; more (a
// replica repeating itself) are dropped, never waited for.
func (c *Client) offerReceiptLocked(cl *call, replica uint32, r *reply) {
	if len(r.receipt) == 0 || len(r.refusal) > 0 {
		return
	}
	select {
	case cl.receipts <- receiptReply{replica: replica, result: bytes.Clone(r.result), receipt: bytes.Clone(r.receipt)}:
	default:
		c.receiptsRejected.Add(1)
	}
}

// ReceiptsRejected returns how many reply receipts InvokeWithReceipt
// dropped: ones that did not verify (bad signature, proof, encoding) and
// ones beyond a call's queue of 2n.
func (c *Client) ReceiptsRejected() uint64 { return c.receiptsRejected.Load() }

// InvokeWithReceipt is Invoke that also returns a receipt (package
// receipt) for the operation: among the replies it checks each receipt
// as it arrives (the signature with the replica's key, the proof of this
// request's leaf with the reply's result), and returns once the result
// is agreed (ReplyQuorum matching replies) and f+1 replicas' valid
// receipts over one statement carry that result. When ctx ends after the
// result is agreed but before the receipts, it returns the result, the
// best partial receipt (or nil) and an error wrapping
// ErrIncompleteReceipt. Other errors as Invoke, and ErrNoReceipts for a
// Raft client.
func (c *Client) InvokeWithReceipt(ctx context.Context, op []byte) ([]byte, *receipt.Receipt, error) {
	// ReplyQuorum 1 is the Raft mode's rule (see Hint); PBFT's f+1 is at
	// least 2.
	c.mu.Lock()
	n, quorum := c.n, c.cfg.ReplyQuorum // Follow may change them
	c.mu.Unlock()
	if quorum < max(2, (n-1)/3+1) {
		return nil, nil, ErrNoReceipts
	}
	cl, err := c.begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer c.end(cl)
	c.mu.Lock()
	cl.receipts = make(chan receiptReply, 2*c.n)
	c.mu.Unlock()
	col := &receiptCollector{c: c, number: cl.number, op: op, need: (n-1)/3 + 1, valid: make(map[uint32]verifiedReceipt)}
	result, err := c.await(ctx, cl, op, col)
	if err != nil && !errors.Is(err, ErrIncompleteReceipt) {
		return nil, nil, err
	}
	rec := col.best()
	if rec != nil && rec.Epoch > 0 {
		// The receipt must carry the chain of certificates that proves its
		// epoch's members, from the genesis the cluster file names.
		history, herr := c.historyFor(ctx, rec.Epoch)
		if herr != nil {
			return result, rec, fmt.Errorf("client: request %d: %w: %w", cl.number, ErrIncompleteReceipt, herr)
		}
		rec.History = hex.EncodeToString(history)
	}
	return result, rec, err
}

// plainReceipt reports whether b is a wire.ReplyReceipt encoding that
// parseReplyFast may pass on undecoded: only ReplyReceipt's own fields,
// each with its declared wire type, well formed. Then proto.Unmarshal
// accepts it and decodes the same fields; anything else goes to
// proto.Unmarshal.
func plainReceipt(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == 1 || num == 4 || num == 5 || num == 8):
			n = protowire.ConsumeFieldValue(num, typ, b)
		case typ == protowire.BytesType && num >= 2 && num <= 7 && num != 4 && num != 5:
			n = protowire.ConsumeFieldValue(num, typ, b)
		default:
			return false
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// resultAgreed reports whether cl's result is in (its done channel closed
// with no error).
func resultAgreed(cl *call) bool {
	select {
	case <-cl.done:
		return cl.err == nil
	default:
		return false
	}
}

// finish is the end of an InvokeWithReceipt whose ctx ended after cl's
// result was agreed: the receipts already queued still count; without f+1
// of them the error wraps ErrIncompleteReceipt and cause.
func (col *receiptCollector) finish(cl *call, cause error) ([]byte, error) {
	if col.agreed(cl.result) {
		return cl.result, nil
	}
	for {
		select {
		case rr := <-cl.receipts:
			if col.add(rr) {
				return cl.result, nil
			}
		default:
			return cl.result, fmt.Errorf("client: request %d: %w: %w", cl.number, ErrIncompleteReceipt, cause)
		}
	}
}

// replicaKey returns member index's public key in the client's current
// epoch, from its peer ID.
func (c *Client) replicaKey(index uint32) ed25519.PublicKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.receiptKeys == nil || c.receiptKeysEpoch != c.cfg.Epoch {
		c.receiptKeys = make(map[uint32]ed25519.PublicKey, len(c.cfg.Replicas))
		for _, m := range c.cfg.Replicas {
			if pub, err := identity.PublicKeyFromPeerID(m.ID); err == nil {
				c.receiptKeys[m.Index] = pub
			}
		}
		c.receiptKeysEpoch = c.cfg.Epoch
	}
	return c.receiptKeys[index]
}

// historyFor returns the encoded configuration history the client holds
// when it proves epoch, and otherwise asks the members for it
// (Membership). Epoch 0 needs none.
func (c *Client) historyFor(ctx context.Context, epoch uint64) ([]byte, error) {
	if epoch == 0 {
		return nil, nil
	}
	c.mu.Lock()
	history, known := c.history, c.historyEpoch
	c.mu.Unlock()
	if known >= epoch {
		return history, nil
	}
	if _, err := c.Membership(ctx); err != nil {
		return nil, fmt.Errorf("client: the configuration history to epoch %d: %w", epoch, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.historyEpoch < epoch {
		return nil, fmt.Errorf("client: the members proved epochs up to %d, the receipt names epoch %d", c.historyEpoch, epoch)
	}
	return c.history, nil
}

// verifiedReceipt is one replica's receipt that verified.
type verifiedReceipt struct {
	statement receipt.Statement
	result    []byte
	wire      *wire.ReplyReceipt
}

// receiptCollector gathers the verified receipts of one request. Only
// its InvokeWithReceipt goroutine uses it.
type receiptCollector struct {
	c      *Client
	number uint64
	op     []byte
	need   int
	// result is the agreed result, nil until then.
	result []byte
	valid  map[uint32]verifiedReceipt
}

// agreed records the agreed result and reports whether the receipt is
// complete.
func (col *receiptCollector) agreed(result []byte) bool {
	col.result = result
	return col.complete() != nil
}

// add checks one replica's receipt; a replica's first valid receipt
// stands, an invalid one is logged and dropped. It reports whether the
// receipt is complete.
func (col *receiptCollector) add(rr receiptReply) bool {
	if _, ok := col.valid[rr.replica]; !ok {
		var m wire.ReplyReceipt
		err := proto.Unmarshal(rr.receipt, &m)
		var st receipt.Statement
		if err == nil {
			st, err = receipt.VerifyReply(col.c.replicaKey(rr.replica), col.c.cfg.ClusterID, col.c.id, col.number, rr.result, &m)
		}
		if err != nil {
			col.c.receiptsRejected.Add(1)
			col.c.log.Debug("dropped a reply receipt", "replica", rr.replica, "request", col.number, "err", err)
			return false
		}
		col.valid[rr.replica] = verifiedReceipt{statement: st, result: rr.result, wire: &m}
	}
	return col.complete() != nil
}

// group returns the valid receipts over one statement with the agreed
// result that have the most signers: their replicas.
func (col *receiptCollector) group() []uint32 {
	if col.result == nil {
		return nil
	}
	var best []uint32
	for _, v := range col.valid {
		if !bytes.Equal(v.result, col.result) {
			continue
		}
		var members []uint32
		for other, w := range col.valid {
			if w.statement == v.statement && bytes.Equal(w.result, col.result) {
				members = append(members, other)
			}
		}
		if len(members) > len(best) {
			best = members
		}
	}
	return best
}

// complete returns the receipt once f+1 replicas' receipts agree, else nil.
func (col *receiptCollector) complete() *receipt.Receipt {
	if len(col.group()) < col.need {
		return nil
	}
	return col.best()
}

// best returns the receipt of the largest group (complete or not), or nil.
func (col *receiptCollector) best() *receipt.Receipt {
	members := col.group()
	if len(members) == 0 {
		return nil
	}
	sigs := make([]receipt.Signature, 0, len(members))
	for _, replica := range members {
		sigs = append(sigs, receipt.Signature{
			Replica:   replica,
			PublicKey: hex.EncodeToString(col.c.replicaKey(replica)),
			Signature: hex.EncodeToString(col.valid[replica].wire.Signature),
		})
	}
	first := col.valid[members[0]].wire
	c := col.c
	return receipt.Assemble(c.cfg.ClusterID, c.id, col.number, col.op, col.result, first, sigs, nil)
}
