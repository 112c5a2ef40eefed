package client_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/localnet"
	"github.com/pbftnode/pbftnode/internal/localnet/localnettest"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/receipt"
	"github.com/pbftnode/pbftnode/wire"
)

// bogusReceipts is a Byzantine replica's filter: its replies carry a
// receipt over the honest statement with a corrupted signature.
type bogusReceipts struct{}

func (bogusReceipts) Outbound(out protocol.Outbound) []protocol.Outbound {
	return []protocol.Outbound{out}
}

func (bogusReceipts) Reply(r *wire.Reply) bool {
	if r.Receipt != nil {
		rr := proto.Clone(r.Receipt).(*wire.ReplyReceipt)
		rr.Signature[0] ^= 0xff
		r.Receipt = rr
	}
	return true
}

func clusterFile(net *localnet.Net) config.ClusterFile {
	cf := config.ClusterFile{ClusterID: net.ClusterID}
	for _, r := range net.Replicas {
		cf.Replicas = append(cf.Replicas, config.ReplicaRecord{Index: r.Index, PublicKey: hex.EncodeToString(r.PublicKey), Address: r.Addr})
	}
	return cf
}

// TestInvokeWithReceiptVerifies: over an in-process PBFT cluster with a
// Byzantine replica whose receipts are bogus, InvokeWithReceipt's
// receipts verify against the cluster file, without the Byzantine
// replica's signature.
func TestInvokeWithReceiptVerifies(t *testing.T) {
	net := localnettest.Start(t, localnet.Options{Replicas: 4, Filters: map[int]pbft.Filter{3: bogusReceipts{}}})
	c, err := net.NewClient(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cf := clusterFile(net)
	for i, op := range [][]byte{
		execution.EncodePut([]byte("a"), []byte("1")),
		execution.EncodeGet([]byte("a")),
		execution.EncodeDelete([]byte("a")),
	} {
		raw, r, err := c.InvokeWithReceipt(ctx, op)
		if err != nil {
			t.Fatalf("operation %d: %v", i, err)
		}
		if err := receipt.Verify(r, cf); err != nil {
			t.Fatalf("operation %d: receipt does not verify: %v\n%+v", i, err, r)
		}
		if r.RawResult != hex.EncodeToString(raw) {
			t.Fatalf("operation %d: receipt's raw result %s, Invoke's %x", i, r.RawResult, raw)
		}
		for _, s := range r.Signatures {
			if s.Replica == 3 {
				t.Fatalf("operation %d: the Byzantine replica's bogus signature is in the receipt", i)
			}
		}
	}
	if _, r, _ := c.InvokeWithReceipt(ctx, execution.EncodeGet([]byte("a"))); r == nil || r.Result != "(not found)" {
		t.Fatalf("get after delete: receipt %+v", r)
	}
}
