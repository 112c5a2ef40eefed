package pbft

import (
	"crypto/ed25519"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

const fzCluster = "node-fuzz-cluster"

func fzKey(kind, i byte) ed25519.PrivateKey {
	var s [ed25519.SeedSize]byte
	s[0], s[1], s[2] = 'n', kind, i
	return ed25519.NewKeyFromSeed(s[:])
}

func fzPeerID(tb testing.TB, key ed25519.PrivateKey) peer.ID {
	id, err := identity.PeerIDFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// fzClientFrame is a ClientFrame carrying a request signed by key.
func fzClientFrame(tb testing.TB, key ed25519.PrivateKey, number uint64, op string) []byte {
	payload, err := proto.Marshal(&wire.Request{ClientId: key.Public().(ed25519.PublicKey), RequestNumber: number, Operation: []byte(op)})
	if err != nil {
		tb.Fatal(err)
	}
	signed := &wire.Signed{Payload: payload, Signature: crypto.NewSigner(key, fzCluster).Sign(crypto.DomainClientRequest, payload)}
	frame, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: signed}})
	if err != nil {
		tb.Fatal(err)
	}
	return frame
}

// fzBundledClientFrame is a request of client key signed as the second of
// a bundle of three (crypto.SignRequests).
func fzBundledClientFrame(tb testing.TB, key ed25519.PrivateKey) []byte {
	id := key.Public().(ed25519.PublicKey)
	payloads := make([][]byte, 3)
	for i := range payloads {
		p, err := proto.Marshal(&wire.Request{ClientId: id, RequestNumber: uint64(10 + i), Operation: []byte("op")})
		if err != nil {
			tb.Fatal(err)
		}
		payloads[i] = p
	}
	sigs := crypto.SignRequests(crypto.NewSigner(key, fzCluster), id, payloads)
	frame, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: &wire.Signed{Payload: payloads[1], Signature: sigs[1]}}})
	if err != nil {
		tb.Fatal(err)
	}
	return frame
}

// fzNode is a Node with just what verifyClientFrame uses.
func fzNode() *Node {
	pubs := make([]ed25519.PublicKey, 4)
	for i := range pubs {
		pubs[i] = fzKey('r', byte(i)).Public().(ed25519.PublicKey)
	}
	n := &Node{
		log:     slog.New(slog.DiscardHandler),
		metrics: node.NewMetrics(),
	}
	n.verifier.Store(protocol.NewMessageVerifier(fzCluster, pubs, crypto.NewVerifiedCache(64), nil, 0))
	return n
}

// FuzzVerifyClientFrame feeds arbitrary client frames, from the client
// whose key the harness holds or from another peer, to verifyClientFrame:
// it must never panic, and what it accepts must be a request signed by the
// very peer that sent it.
func FuzzVerifyClientFrame(f *testing.F) {
	client := fzKey('c', 0)
	valid := fzClientFrame(f, client, 1, "op")
	f.Add(valid, true)
	f.Add(valid, false) // from another peer: client_mismatch
	f.Add(fzClientFrame(f, fzKey('c', 1), 2, ""), true)
	f.Add([]byte{}, true)
	f.Add([]byte{0x0a, 0x00}, true) // an empty Signed request
	f.Add([]byte{0xff, 0x01}, false)
	bad := append([]byte(nil), valid...)
	bad[len(bad)-1] ^= 0x80
	f.Add(bad, true)
	f.Add(fzReadBatchFrame(f, client), true)
	f.Add(fzReadBatchFrame(f, client), false)
	f.Add(fzBundledClientFrame(f, client), true)

	n := fzNode()
	clientID := fzPeerID(f, client)
	otherID := fzPeerID(f, fzKey('c', 9))

	f.Fuzz(func(t *testing.T, data []byte, fromClient bool) {
		from := otherID
		if fromClient {
			from = clientID
		}
		in, ok := n.verifyClientFrame(p2p.Frame{From: from, FromIndex: -1, Data: data})
		if !ok {
			return
		}
		if in.reads != nil {
			checkReadBatchInput(t, in, from)
			return
		}
		if in.req == nil || in.req.Request == nil || in.req.Signed == nil || in.msg != nil {
			t.Fatalf("accepted frame gave input %+v", in)
		}
		if in.client != from {
			t.Fatalf("input names client %s, frame came from %s", in.client, from)
		}
		pub := ed25519.PublicKey(in.req.Request.ClientId)
		if id, err := identity.PeerIDFromPublicKey(pub); err != nil || id != from {
			t.Fatalf("accepted a request of client %x from peer %s", pub, from)
		}
		check, err := crypto.CheckOfRequest(in.req.Request.ClientId, in.req.Signed.Payload, in.req.Signed.Signature)
		if err != nil || !crypto.Verify(pub, fzCluster, check.Domain, check.Payload, check.Signature) {
			t.Fatalf("accepted a request its client did not sign (%v)", err)
		}
	})
}

// checkReadBatchInput fails unless in holds at most wire.MaxReadBatch
// read-only requests, each of the client of the stream from.
func checkReadBatchInput(t *testing.T, in input, from peer.ID) {
	t.Helper()
	if len(in.reads) == 0 || len(in.reads) > wire.MaxReadBatch || in.req != nil || in.msg != nil || in.client != from {
		t.Fatalf("accepted read batch gave input %+v", in)
	}
	for _, r := range in.reads {
		if id, err := identity.ClientPeerID(r.GetClientId()); err != nil || id != from || !r.GetReadOnly() || r.GetRequestNumber() == 0 {
			t.Fatalf("accepted read %+v from peer %s", r, from)
		}
	}
}

func TestVerifyClientFrameSeeds(t *testing.T) {
	n := fzNode()
	client := fzKey('c', 0)
	if in, ok := n.verifyClientFrame(p2p.Frame{From: fzPeerID(t, client), FromIndex: -1, Data: fzReadBatchFrame(t, client)}); !ok || len(in.reads) != 2 {
		t.Fatalf("a read batch from its own client gave %+v, %v; want its two reads", in, ok)
	}
	if _, ok := n.verifyClientFrame(p2p.Frame{From: fzPeerID(t, fzKey('c', 9)), FromIndex: -1, Data: fzReadBatchFrame(t, client)}); ok {
		t.Fatal("a read batch relayed by another peer was accepted")
	}
	valid := fzClientFrame(t, client, 1, "op")
	if _, ok := n.verifyClientFrame(p2p.Frame{From: fzPeerID(t, client), FromIndex: -1, Data: valid}); !ok {
		t.Fatal("a valid request from its own client was dropped")
	}
	if _, ok := n.verifyClientFrame(p2p.Frame{From: fzPeerID(t, fzKey('c', 9)), FromIndex: -1, Data: valid}); ok {
		t.Fatal("a request relayed by another peer was accepted")
	}
	bad := append([]byte(nil), valid...)
	bad[len(bad)-1] ^= 0x80
	if _, ok := n.verifyClientFrame(p2p.Frame{From: fzPeerID(t, client), FromIndex: -1, Data: bad}); ok {
		t.Fatal("a request with a corrupted signature was accepted")
	}
}

// fzReadBatchFrame is a ClientFrame with a ReadBatch of two reads by
// client.
func fzReadBatchFrame(tb testing.TB, client ed25519.PrivateKey) []byte {
	tb.Helper()
	id := []byte(client.Public().(ed25519.PublicKey))
	b, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Reads{Reads: &wire.ReadBatch{ClientId: id, Reads: []*wire.ReadItem{
		{RequestNumber: 1 << 63, Operation: []byte("get a")}, {RequestNumber: 1<<63 + 1, Operation: []byte("get b")}}}}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
