package client

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// referenceFrame is how frame encoded requests with the proto runtime.
func referenceFrame(t *testing.T, c *Client, number uint64, op []byte, flags requestFlags) []byte {
	t.Helper()
	payload, err := proto.Marshal(&wire.Request{ClientId: c.id, RequestNumber: number, Operation: op, Receipt: flags.receipt, Tentative: flags.tentative})
	if err != nil {
		t.Fatal(err)
	}
	signed := &wire.Signed{Payload: payload, Signature: c.signer.Sign(crypto.DomainClientRequest, payload)}
	frame, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: signed}})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func TestFrameMatchesProtoMarshal(t *testing.T) {
	c := newBenchClient(64)
	ops := [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{7}, 200), bytes.Repeat([]byte{1}, 20000)}
	for _, number := range []uint64{0, 1, 127, 128, 1 << 40, 1<<64 - 1} {
		for _, op := range ops {
			for _, flags := range []requestFlags{{}, {receipt: true}, {tentative: true}, {receipt: true, tentative: true}} {
				checkFrame(t, c, number, op, flags)
			}
		}
	}
}

// checkFrame fails unless c.frame encodes the ordered request as
// proto.Marshal would, and it decodes to what was asked.
func checkFrame(t *testing.T, c *Client, number uint64, op []byte, flags requestFlags) {
	t.Helper()
	got := c.frame(number, op, flags)
	if want := referenceFrame(t, c, number, op, flags); !bytes.Equal(got, want) {
		t.Fatalf("frame(%d, %d bytes, %+v) differs from proto.Marshal:\n got %x\nwant %x", number, len(op), flags, got, want)
	}
	var f wire.ClientFrame
	if err := proto.Unmarshal(got, &f); err != nil {
		t.Fatalf("frame does not decode: %v", err)
	}
	var req wire.Request
	if err := proto.Unmarshal(f.GetRequest().GetPayload(), &req); err != nil {
		t.Fatalf("payload does not decode: %v", err)
	}
	if !bytes.Equal(req.ClientId, c.id) || req.RequestNumber != number || !bytes.Equal(req.Operation, op) ||
		req.Receipt != flags.receipt || req.Tentative != flags.tentative {
		t.Fatalf("decoded request %v; want number %d, %d-byte op, %+v", &req, number, len(op), flags)
	}
}

// protoReply is r decoded the proto runtime's way, as a reply.
func protoReply(data []byte) (reply, error) {
	var m wire.Reply
	if err := proto.Unmarshal(data, &m); err != nil {
		return reply{}, err
	}
	return reply{view: m.View, clientID: m.ClientId, number: m.RequestNumber, replica: m.Replica,
		result: m.Result, refusal: []byte(m.Error), leaderHint: m.LeaderHint,
		sequence: m.Sequence, tentative: m.Tentative}, nil
}

func sameReply(a, b reply) bool {
	return a.view == b.view && bytes.Equal(a.clientID, b.clientID) && a.number == b.number &&
		a.replica == b.replica && bytes.Equal(a.result, b.result) && bytes.Equal(a.refusal, b.refusal) &&
		a.leaderHint == b.leaderHint && a.sequence == b.sequence && a.tentative == b.tentative
}

// checkFastAgrees fails if parseReplyFast accepts data but decodes it
// differently from proto.Unmarshal (or proto.Unmarshal refuses it).
func checkFastAgrees(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	var got reply
	if !parseReplyFast(data, &got) {
		return false
	}
	want, err := protoReply(data)
	if err != nil {
		t.Fatalf("parseReplyFast accepted %x, proto.Unmarshal refuses it: %v", data, err)
	}
	if !sameReply(got, want) {
		t.Fatalf("parseReplyFast(%x) = %+v; proto.Unmarshal %+v", data, got, want)
	}
	return true
}

func TestParseReplyFastOnMarshalledReplies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		m := &wire.Reply{
			View:          rng.Uint64() >> rng.IntN(64),
			RequestNumber: rng.Uint64() >> rng.IntN(64),
			Replica:       rng.Uint32() >> rng.IntN(32),
			LeaderHint:    rng.Uint32() >> rng.IntN(32),
			Sequence:      rng.Uint64() >> rng.IntN(64),
			Tentative:     rng.IntN(2) == 0,
		}
		if rng.IntN(4) > 0 {
			m.ClientId = bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(40))
		}
		if rng.IntN(3) == 0 {
			m.Error = fmt.Sprintf("refused %d ✓", rng.IntN(1000))
		} else {
			m.Result = bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(300))
		}
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !checkFastAgrees(t, data) {
			t.Fatalf("parseReplyFast refused a marshalled Reply %v", m)
		}
	}
}

func TestParseReplyFastEdgeCases(t *testing.T) {
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	var dup []byte // fields repeated: the last occurrence wins
	for _, v := range []uint64{5, 9} {
		dup = protowire.AppendVarint(tag(dup, replyNumber, protowire.VarintType), v)
		dup = protowire.AppendBytes(tag(dup, replyResult, protowire.BytesType), []byte{byte(v)})
	}
	wideReplica := protowire.AppendVarint(tag(nil, replyReplica, protowire.VarintType), 1<<32+3)
	unknown := protowire.AppendVarint(tag(nil, 99, protowire.VarintType), 1)
	wrongType := protowire.AppendBytes(tag(nil, replyNumber, protowire.BytesType), []byte{1})
	badUTF8 := protowire.AppendBytes(tag(nil, replyError, protowire.BytesType), []byte{0xff, 0xfe})
	group := protowire.AppendTag(tag(nil, 9, protowire.StartGroupType), 9, protowire.EndGroupType)
	cases := []struct {
		name string
		data []byte
		fast bool
	}{
		{"empty", nil, true},
		{"duplicate fields", dup, true},
		{"replica wider than 32 bits", wideReplica, true},
		{"unknown field", unknown, false},
		{"known field, wrong wire type", wrongType, false},
		{"invalid UTF-8 error", badUTF8, false},
		{"group", group, false},
		{"field number 0", []byte{0x00, 0x01}, false},
		{"truncated bytes", []byte{0x2a, 0x05, 'a'}, false},
		{"truncated varint", []byte{0x08, 0x80}, false},
	}
	for _, tc := range cases {
		if got := checkFastAgrees(t, tc.data); got != tc.fast {
			t.Errorf("%s: parseReplyFast accepted=%v; want %v", tc.name, got, tc.fast)
		}
	}
	var r reply
	if !parseReplyFast(dup, &r) || r.number != 9 || !bytes.Equal(r.result, []byte{9}) {
		t.Fatalf("duplicate fields decoded as number %d result %x; want the last ones", r.number, r.result)
	}
}

// FuzzParseReplyFast: whatever parseReplyFast accepts, proto.Unmarshal
// accepts and decodes identically.
func FuzzParseReplyFast(f *testing.F) {
	good, _ := proto.Marshal(&wire.Reply{View: 3, ClientId: []byte("id"), RequestNumber: 7, Replica: 2, Result: []byte("ok"), LeaderHint: 1})
	refused, _ := proto.Marshal(&wire.Reply{RequestNumber: 7, Error: "no"})
	tentative, _ := proto.Marshal(&wire.Reply{View: 3, RequestNumber: 7, Result: []byte("ok"), Sequence: 9, Tentative: true})
	f.Add(good)
	f.Add(tentative)
	f.Add(refused)
	f.Add([]byte{0x32, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastAgrees(t, data)
	})
}

// TestSevenReplicasQuorumThree exercises replica slots beyond the inline
// four and the view rule with ReplyQuorum 3.
func TestSevenReplicasQuorumThree(t *testing.T) {
	c := newTestClient(t, 64)
	c.cfg.Replicas = []p2p.Member{{Index: 0}, {Index: 1}, {Index: 2}, {Index: 3}, {Index: 4}, {Index: 5}, {Index: 6}}
	c.n, c.cfg.ReplyQuorum = 7, 3
	c.span, c.member, _ = memberIndices(c.cfg.Replicas)
	cl := mustBegin(t, c)
	send := func(from int, view uint64, result string) {
		c.handleReply(replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: uint32(from), View: view, Result: []byte(result)}))
	}
	send(6, 100, "X")
	send(6, 100, "X") // duplicate
	send(5, 50, "Y")
	send(4, 40, "X")
	if isDone(cl) {
		t.Fatal("two matching replies completed a call needing three")
	}
	c.handleReply(replyFrame(t, 3, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: 2, View: 90, Result: []byte("X")})) // lies about its index
	if isDone(cl) {
		t.Fatal("a reply with a lying Replica field counted")
	}
	send(3, 30, "X")
	if !isDone(cl) || string(cl.result) != "X" {
		t.Fatalf("done=%v result=%q; want X from replicas 6, 4, 3", isDone(cl), cl.result)
	}
	c.mu.Lock()
	view := c.view
	c.mu.Unlock()
	if view != 30 {
		t.Fatalf("view %d; want 30, the 3rd highest of 100, 40, 30", view)
	}
}

// TestReplyWithUnknownFieldCounts: a reply the fast decoder leaves to the
// proto runtime (an unknown field) still counts like any other.
func TestReplyWithUnknownFieldCounts(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	withUnknown := func(from int) p2p.Frame {
		f := c.testReply(t, from, cl.number, "X")
		f.Data = protowire.AppendVarint(protowire.AppendTag(f.Data, 42, protowire.VarintType), 1)
		return f
	}
	c.handleReply(withUnknown(0))
	c.handleReply(withUnknown(0))
	if isDone(cl) {
		t.Fatal("one replica's replies completed the call")
	}
	c.handleReply(c.testReply(t, 1, cl.number, "X"))
	if !isDone(cl) || string(cl.result) != "X" {
		t.Fatalf("done=%v result=%q; want X", isDone(cl), cl.result)
	}
}

// TestInvalidUTF8RefusalIgnored: a refusal whose message is not UTF-8 does
// not decode and so does not count.
func TestInvalidUTF8RefusalIgnored(t *testing.T) {
	c := newTestClient(t, 64)
	cl := mustBegin(t, c)
	for from := range 2 {
		b := protowire.AppendBytes(protowire.AppendTag(nil, replyClientID, protowire.BytesType), c.id)
		b = protowire.AppendVarint(protowire.AppendTag(b, replyNumber, protowire.VarintType), cl.number)
		b = protowire.AppendVarint(protowire.AppendTag(b, replyReplica, protowire.VarintType), uint64(from))
		b = protowire.AppendBytes(protowire.AppendTag(b, replyError, protowire.BytesType), []byte{0xff})
		c.handleReply(p2p.Frame{FromIndex: from, Data: b})
	}
	if isDone(cl) {
		t.Fatalf("undecodable refusals ended the call: %v", cl.err)
	}
}

// TestLeaderHintOnlyWithQuorumOne: the hint of the completing reply is
// taken with ReplyQuorum 1 and ignored with 2.
func TestLeaderHintOnlyWithQuorumOne(t *testing.T) {
	for _, quorum := range []int{1, 2} {
		c := newTestClient(t, 64)
		c.cfg.ReplyQuorum = quorum
		c.leader = -1
		cl := mustBegin(t, c)
		for from := range quorum {
			c.handleReply(replyFrame(t, from, &wire.Reply{ClientId: c.id, RequestNumber: cl.number, Replica: uint32(from), Result: []byte("X"), LeaderHint: 3}))
		}
		if !isDone(cl) {
			t.Fatalf("quorum %d: call not complete", quorum)
		}
		want := -1
		if quorum == 1 {
			want = 2
		}
		c.mu.Lock()
		leader := c.leader
		c.mu.Unlock()
		if leader != want {
			t.Fatalf("quorum %d: leader %d; want %d", quorum, leader, want)
		}
	}
}

// checkUnsignedFrame fails unless c's frame of request 7 with op encodes
// as proto.Marshal would with no signature.
func checkUnsignedFrame(t *testing.T, c *Client, op []byte, readOnly bool) {
	t.Helper()
	got := c.frame(7, op, requestFlags{readOnly: readOnly})
	payload, err := proto.Marshal(&wire.Request{ClientId: c.id, RequestNumber: 7, Operation: op, ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	want, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: &wire.Signed{Payload: payload}}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("frame (read-only %v):\n got %x\nwant %x", readOnly, got, want)
	}
}

// TestReadOnlyFramesAreUnsigned: a read-only request carries no
// signature (replicas answer it on the client's authenticated stream
// without verifying one), and otherwise encodes as proto.Marshal would.
func TestReadOnlyFramesAreUnsigned(t *testing.T) {
	c := newBenchClient(64)
	checkUnsignedFrame(t, c, []byte("get"), true)
	ordered := c.frame(7, []byte("get"), requestFlags{})
	var f wire.ClientFrame
	if err := proto.Unmarshal(ordered, &f); err != nil || len(f.GetRequest().GetSignature()) != 64 {
		t.Fatalf("ordered frame lost its signature: %v", err)
	}
}

// TestRaftModeFramesAreUnsigned: a crash-fault client (ReplyQuorum 1, the
// Raft mode) signs no request, read-only or ordered; each encodes as
// proto.Marshal would, with no signature.
func TestRaftModeFramesAreUnsigned(t *testing.T) {
	c := newBenchClient(64)
	c.crashFaults = true
	checkUnsignedFrame(t, c, []byte("put"), false)
	checkUnsignedFrame(t, c, []byte("get"), true)
}
