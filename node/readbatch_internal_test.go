package node

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"testing"

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
