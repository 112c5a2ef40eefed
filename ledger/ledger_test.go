package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// testKey returns the public key of a deterministic test key pair.
func testKey(i byte) ed25519.PublicKey {
	seed := bytes.Repeat([]byte{i + 1}, ed25519.SeedSize)
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

var (
	issuer = testKey(0)
	alice  = testKey(1)
	bob    = testKey(2)
)

func openDB(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(t.TempDir(), storage.DefaultOptions(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newLedger opens a ledger with issuer as its only issuer key.
func newLedger(t testing.TB) *Ledger {
	t.Helper()
	app, err := Open([]ed25519.PublicKey{issuer})(openDB(t), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return app.(*Ledger)
}

// run executes op for sender (a client ID of the key and a session
// suffix, as the replica passes it) and decodes the result.
func run(t testing.TB, l *Ledger, sender []byte, op []byte) *wire.LedgerResult {
	t.Helper()
	clientID := append(bytes.Clone(sender), "session-1"...)
	res, err := DecodeResult(l.ExecuteRequest(clientID, op))
	if err != nil {
		t.Fatalf("DecodeResult: %v", err)
	}
	return res
}

func mustOK(t testing.TB, r *wire.LedgerResult) *wire.LedgerResult {
	t.Helper()
	if r.GetError() != "" {
		t.Fatalf("operation refused: %s", r.GetError())
	}
	return r
}

func checkInvariants(t testing.TB, l *Ledger) {
	t.Helper()
	if err := l.Invariants(); err != nil {
		t.Fatalf("Invariants: %v", err)
	}
}

func TestMintTransferBalanceHistory(t *testing.T) {
	l := newLedger(t)
	if r := mustOK(t, run(t, l, issuer, EncodeMint(alice, 1000))); r.GetBalance() != 1000 || r.GetTotalMinted() != 1000 {
		t.Fatalf("mint result %v, want balance 1000 total 1000", r)
	}
	if r := mustOK(t, run(t, l, alice, EncodeTransfer(bob, 300))); r.GetBalance() != 700 {
		t.Fatalf("transfer result %v, want sender balance 700", r)
	}
	mustOK(t, run(t, l, bob, EncodeTransfer(alice, 50)))
	for _, c := range []struct {
		account []byte
		want    uint64
	}{{alice, 750}, {bob, 250}, {issuer, 0}} {
		if r := mustOK(t, run(t, l, bob, EncodeBalance(c.account))); r.GetBalance() != c.want || r.GetTotalMinted() != 1000 {
			t.Fatalf("balance %x = %v, want %d of total 1000", c.account[:4], r, c.want)
		}
	}
	h := mustOK(t, run(t, l, bob, EncodeHistory(alice, 0))).GetHistory()
	want := []*wire.LedgerEntry{
		{SequenceInAccount: 1, Kind: "mint", To: alice, Amount: 1000, BalanceAfter: 1000},
		{SequenceInAccount: 2, Kind: "transfer", From: alice, To: bob, Amount: 300, BalanceAfter: 700},
		{SequenceInAccount: 3, Kind: "transfer", From: bob, To: alice, Amount: 50, BalanceAfter: 750},
	}
	if len(h) != len(want) {
		t.Fatalf("alice's history has %d entries, want %d: %v", len(h), len(want), h)
	}
	for i := range want {
		if !bytes.Equal(marshal(h[i]), marshal(want[i])) {
			t.Fatalf("alice's history entry %d = %v, want %v", i, h[i], want[i])
		}
	}
	bobs := mustOK(t, run(t, l, alice, EncodeHistory(bob, 0))).GetHistory()
	if len(bobs) != 2 || bobs[0].GetBalanceAfter() != 300 || bobs[1].GetBalanceAfter() != 250 || bobs[1].GetSequenceInAccount() != 2 {
		t.Fatalf("bob's history = %v, want entries 1 (300) and 2 (250)", bobs)
	}
	checkInvariants(t, l)
}

func TestRefusalsChangeNothing(t *testing.T) {
	l := newLedger(t)
	mustOK(t, run(t, l, issuer, EncodeMint(alice, 100)))
	mustOK(t, run(t, l, issuer, EncodeMint(bob, ^uint64(0)-200)))
	short := alice[:31]
	cases := []struct {
		name    string
		sender  []byte
		op      []byte
		wantErr string
	}{
		{"mint by a non-issuer", alice, EncodeMint(alice, 5), "not an issuer"},
		{"mint to a short account", issuer, EncodeMint(short, 5), "account must be 32 bytes"},
		{"mint of zero", issuer, EncodeMint(alice, 0), "amount must be positive"},
		{"mint overflowing the total", issuer, EncodeMint(alice, 101), "would overflow"},
		{"transfer over the balance", alice, EncodeTransfer(bob, 101), "insufficient funds: balance 100, amount 101"},
		{"transfer from an empty account", issuer, EncodeTransfer(bob, 1), "insufficient funds: balance 0, amount 1"},
		{"transfer of zero", alice, EncodeTransfer(bob, 0), "amount must be positive"},
		{"transfer to a long account", alice, EncodeTransfer(append(bytes.Clone(bob), 0), 1), "recipient must be 32 bytes"},
		{"balance of a short account", alice, EncodeBalance(short), "account must be 32 bytes"},
		{"history of no account", alice, EncodeHistory(nil, 1), "account must be 32 bytes"},
		{"malformed operation", alice, []byte{0xff, 0xff, 0xff}, "malformed operation"},
		{"empty operation", alice, nil, "no operation set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := l.Digest()
			r := run(t, l, c.sender, c.op)
			if !strings.Contains(r.GetError(), c.wantErr) {
				t.Fatalf("error %q, want it to contain %q", r.GetError(), c.wantErr)
			}
			if l.Digest() != before {
				t.Fatal("a refused operation changed the state")
			}
			checkInvariants(t, l)
		})
	}
	if r := run(t, l, alice, EncodeBalance(alice)); r.GetBalance() != 100 {
		t.Fatalf("alice's balance %d after the refusals, want 100", r.GetBalance())
	}
}

func TestOperationsNeedASender(t *testing.T) {
	l := newLedger(t)
	before := l.Digest()
	r, err := DecodeResult(l.Execute(EncodeMint(alice, 1)))
	if err != nil || !strings.Contains(r.GetError(), "without a sender") {
		t.Fatalf("plain Execute = %v, %v; want a refusal without a sender", r, err)
	}
	r, err = DecodeResult(l.ExecuteRequest(issuer[:16], EncodeMint(alice, 1)))
	if err != nil || !strings.Contains(r.GetError(), "no sending account") {
		t.Fatalf("short client ID = %v, %v; want a refusal", r, err)
	}
	if l.Digest() != before {
		t.Fatal("refused operations changed the state")
	}
}

// TestSenderIsTheClientKey: the funds moved are the client key's, whatever
// the operation says, and a session suffix does not change the account.
func TestSenderIsTheClientKey(t *testing.T) {
	l := newLedger(t)
	mustOK(t, run(t, l, issuer, EncodeMint(alice, 10)))
	r := run(t, l, bob, EncodeTransfer(bob, 5))
	if !strings.Contains(r.GetError(), "insufficient funds: balance 0") {
		t.Fatalf("bob moving funds he does not have: %v, want refused", r)
	}
	res, _ := DecodeResult(l.ExecuteRequest(append(bytes.Clone(alice), "other-session"...), EncodeTransfer(bob, 4)))
	if res.GetError() != "" || res.GetBalance() != 6 {
		t.Fatalf("alice (another session) transfer = %v, want balance 6", res)
	}
}

func TestSelfTransfer(t *testing.T) {
	l := newLedger(t)
	mustOK(t, run(t, l, issuer, EncodeMint(alice, 10)))
	if r := mustOK(t, run(t, l, alice, EncodeTransfer(alice, 10))); r.GetBalance() != 10 {
		t.Fatalf("self transfer left balance %d, want 10", r.GetBalance())
	}
	h := mustOK(t, run(t, l, alice, EncodeHistory(alice, 0))).GetHistory()
	if len(h) != 2 || h[1].GetBalanceAfter() != 10 || h[1].GetKind() != "transfer" {
		t.Fatalf("history after a self transfer = %v, want one transfer entry at balance 10", h)
	}
	checkInvariants(t, l)
}

func TestHistoryLimits(t *testing.T) {
	l := newLedger(t)
	const mints = MaxHistoryLimit + 5
	for i := 1; i <= mints; i++ {
		mustOK(t, run(t, l, issuer, EncodeMint(alice, uint64(i))))
	}
	for _, c := range []struct {
		limit      uint32
		want       int
		firstMint  uint64
		wantLastNo uint64
	}{
		{0, DefaultHistoryLimit, mints - DefaultHistoryLimit + 1, mints},
		{3, 3, mints - 2, mints},
		{MaxHistoryLimit + 100, MaxHistoryLimit, mints - MaxHistoryLimit + 1, mints},
	} {
		h := mustOK(t, run(t, l, bob, EncodeHistory(alice, c.limit))).GetHistory()
		if len(h) != c.want || h[0].GetAmount() != c.firstMint || h[len(h)-1].GetSequenceInAccount() != c.wantLastNo {
			t.Fatalf("history limit %d: %d entries from amount %d to number %d, want %d from %d to %d",
				c.limit, len(h), h[0].GetAmount(), h[len(h)-1].GetSequenceInAccount(), c.want, c.firstMint, c.wantLastNo)
		}
	}
	checkInvariants(t, l)
}

func TestNewRejectsBadIssuerKeys(t *testing.T) {
	if _, err := Open([]ed25519.PublicKey{issuer[:31]})(openDB(t), nil); err == nil {
		t.Fatal("Open accepted a 31-byte issuer key")
	}
}

func TestParseAccount(t *testing.T) {
	hexAlice := hex.EncodeToString(alice)
	got, err := ParseAccount(hexAlice)
	if err != nil || !bytes.Equal(got, alice) {
		t.Fatalf("ParseAccount = %x, %v; want alice", got, err)
	}
	for _, bad := range []string{"", "zz", hexAlice[:62], hexAlice + "00", "g" + hexAlice[1:]} {
		if _, err := ParseAccount(bad); err == nil {
			t.Fatalf("ParseAccount(%q) accepted", bad)
		}
	}
}

func unmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }
