package node

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
)

// testClientID is the client id of a fixed key and session, and the peer
// its stream comes from.
func testClientID(t *testing.T, seed byte) ([]byte, string) {
	t.Helper()
	var s [ed25519.SeedSize]byte
	s[0] = seed
	id, err := crypto.ClientID(ed25519.NewKeyFromSeed(s[:]).Public().(ed25519.PublicKey), []byte("session"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := identity.ClientPeerID(id)
	if err != nil {
		t.Fatal("no peer for the client id")
	}
	return id, string(p)
}

func readBatch(id []byte, numbers ...uint64) *wire.ReadBatch {
	b := &wire.ReadBatch{ClientId: id}
	for _, n := range numbers {
		b.Reads = append(b.Reads, &wire.ReadItem{RequestNumber: n, Operation: fmt.Appendf(nil, "get %d", n)})
	}
	return b
}

// A ReadBatch becomes the client's read-only requests; one with too many
// reads, none, another client's id or a read without a number is dropped.
func TestReadBatchRequests(t *testing.T) {
	id, self := testClientID(t, 1)
	other, _ := testClientID(t, 2)
	reqs, reason := ReadBatchRequests(readBatch(id, 5, 6), self)
	if reason != "" || len(reqs) != 2 {
		t.Fatalf("a good batch: %d requests, dropped for %q", len(reqs), reason)
	}
	for i, r := range reqs {
		if !r.GetReadOnly() || !bytes.Equal(r.GetClientId(), id) || r.GetRequestNumber() != uint64(5+i) || string(r.GetOperation()) != fmt.Sprintf("get %d", 5+i) {
			t.Errorf("request %d: %v", i, r)
		}
	}
	many := make([]uint64, wire.MaxReadBatch+1)
	for i := range many {
		many[i] = uint64(i + 1)
	}
	for name, tc := range map[string]struct {
		b    *wire.ReadBatch
		want string
	}{
		"too many reads":    {readBatch(id, many...), "read_batch_size"},
		"no reads":          {readBatch(id), "read_batch_size"},
		"another client":    {readBatch(other, 1), "client_mismatch"},
		"no request number": {readBatch(id, 1, 0), "malformed"},
	} {
		if reqs, reason := ReadBatchRequests(tc.b, self); reason != tc.want || reqs != nil {
			t.Errorf("%s: dropped for %q with %d requests, want %q", name, reason, len(reqs), tc.want)
		}
	}
	if _, reason := ReadBatchRequests(readBatch(id, many[:wire.MaxReadBatch]...), self); reason != "" {
		t.Errorf("a batch of wire.MaxReadBatch reads dropped for %q", reason)
	}
}

func readReply(client []byte, number, view uint64, result string) *wire.Reply {
	return &wire.Reply{View: view, ClientId: client, RequestNumber: number, Replica: 1, Result: []byte(result), LeaderHint: 2, ReadOnly: true, Epoch: 3}
}

// Replies group by client, in order, and split at wire.MaxReadBatch, at
// maxAnswerBytes and where the view changes.
func TestGroupReadReplies(t *testing.T) {
	a, b, c := []byte("client a"), []byte("client b"), []byte("client c")
	var replies []*wire.Reply
	replies = append(replies, readReply(a, 1, 1, "x"), readReply(b, 2, 1, "y"), readReply(a, 3, 1, "z"), readReply(a, 4, 2, "w"))
	for i := range wire.MaxReadBatch + 10 {
		replies = append(replies, readReply(c, uint64(100+i), 1, "v"))
	}
	big := string(make([]byte, maxAnswerBytes/2+1))
	replies = append(replies, readReply(b, 5, 1, big), readReply(b, 6, 1, big))
	var got []string
	for _, g := range groupReadReplies(replies, nil) {
		got = append(got, fmt.Sprintf("%s:%d-%d:%d", g[0].GetClientId(), g[0].GetRequestNumber(), g[len(g)-1].GetRequestNumber(), len(g)))
	}
	want := []string{
		"client a:1-3:2", "client b:2-5:2", "client a:4-4:1",
		fmt.Sprintf("client c:100-%d:%d", 100+wire.MaxReadBatch-1, wire.MaxReadBatch),
		fmt.Sprintf("client c:%d-%d:10", 100+wire.MaxReadBatch, 100+wire.MaxReadBatch+9),
		"client b:6-6:1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups\n%v\nwant\n%v", got, want)
	}
}

// encodeAnswers writes what proto.Marshal makes of the Reply with
// read_answers.
func TestEncodeAnswersMatchesProtoMarshal(t *testing.T) {
	id := []byte("client")
	replies := []*wire.Reply{readReply(id, 7, 4, "seven"), readReply(id, 8, 4, ""), readReply(id, 9, 4, "")}
	replies[2].Result, replies[2].Error = nil, "refused"
	want := &wire.Reply{View: 4, ClientId: id, Replica: 1, LeaderHint: 2, ReadOnly: true, Epoch: 3, ReadAnswers: []*wire.ReadAnswer{
		{RequestNumber: 7, Result: []byte("seven")}, {RequestNumber: 8}, {RequestNumber: 9, Error: "refused"}}}
	wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := encodeAnswers(replies); !bytes.Equal(got, wantBytes) {
		t.Errorf("encodeAnswers = %x\nproto.Marshal = %x", got, wantBytes)
	}
}

// slowReadBatchFrame is what the runtimes did before the fast path:
// proto.Unmarshal of the ClientFrame, then ReadBatchRequests of its reads
// (ok false: not a ReadBatch frame).
func slowReadBatchFrame(data []byte, client string) ([]*wire.Request, string, bool) {
	var frame wire.ClientFrame
	if err := proto.Unmarshal(data, &frame); err != nil || frame.GetReads() == nil {
		return nil, "", false
	}
	reqs, reason := ReadBatchRequests(frame.GetReads(), client)
	return reqs, reason, true
}

// checkFastReadBatch fails if ReadBatchFrameRequests accepts data and
// decodes it otherwise than proto.Unmarshal and ReadBatchRequests would.
func checkFastReadBatch(t *testing.T, data []byte, client string) (fast bool) {
	t.Helper()
	got, gotReason, ok := ReadBatchFrameRequests(data, client)
	if !ok {
		return false
	}
	want, wantReason, isBatch := slowReadBatchFrame(data, client)
	if !isBatch {
		t.Fatalf("fast path took %x, which proto.Unmarshal does not read as a ReadBatch frame", data)
	}
	if gotReason != wantReason || len(got) != len(want) {
		t.Fatalf("fast path: %d requests, reason %q; slow path: %d, %q", len(got), gotReason, len(want), wantReason)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("request %d: fast %v, slow %v", i, got[i], want[i])
		}
	}
	return true
}

func marshalFrame(t testing.TB, b *wire.ReadBatch) []byte {
	data, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Reads{Reads: b}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The fast path decodes what clients send exactly as the proto runtime
// does, drops what ReadBatchRequests drops for the same reason, and
// leaves everything else to proto.Unmarshal.
func TestReadBatchFrameRequestsMatchesProto(t *testing.T) {
	id, self := testClientID(t, 1)
	other, _ := testClientID(t, 2)
	many := readBatch(id)
	for i := range wire.MaxReadBatch + 1 {
		many.Reads = append(many.Reads, &wire.ReadItem{RequestNumber: uint64(i + 1)})
	}
	taken := map[string]*wire.ReadBatch{
		"two reads":               readBatch(id, 5, 6),
		"an empty op":             {ClientId: id, Reads: []*wire.ReadItem{{RequestNumber: 7}}},
		"another client":          readBatch(other, 5),
		"a read without a number": {ClientId: id, Reads: []*wire.ReadItem{{RequestNumber: 5}, {Operation: []byte("get x")}}},
		"too many reads":          many,
		"no reads":                {ClientId: id},
	}
	for name, b := range taken {
		if !checkFastReadBatch(t, marshalFrame(t, b), self) {
			t.Errorf("%s: left to the slow path", name)
		}
	}
	plain := marshalFrame(t, readBatch(id, 5))
	left := map[string][]byte{
		"a request frame":  append(protowire.AppendTag(nil, 1, protowire.BytesType), 0),
		"reads twice":      append(append([]byte(nil), plain...), plain...),
		"an unknown field": protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), plain...), 9, protowire.VarintType), 1),
		"garbage":          {0xff, 0xff, 0xff},
		"client id twice":  marshalFrameRaw(protowire.AppendBytes(protowire.AppendTag(batchBytes(t, readBatch(id, 5)), 1, protowire.BytesType), id)),
	}
	for name, data := range left {
		if checkFastReadBatch(t, data, self) {
			t.Errorf("%s: taken by the fast path", name)
		}
	}
}

func batchBytes(t testing.TB, b *wire.ReadBatch) []byte {
	data, err := proto.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func marshalFrameRaw(batch []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), batch)
}

func FuzzReadBatchFrameRequests(f *testing.F) {
	id := make([]byte, 32)
	f.Add(marshalFrame(f, readBatch(id, 1, 2)))
	f.Add(marshalFrame(f, &wire.ReadBatch{ClientId: id, Reads: []*wire.ReadItem{{}}}))
	f.Add([]byte{0x12, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, self := testClientID(t, 1)
		checkFastReadBatch(t, data, self)
	})
}
