package ledger

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand"
	"testing"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// replica is a ledger driven by an Executor, as a runtime drives it.
type replica struct {
	db     *storage.DB
	ledger *Ledger
	exe    *execution.Executor
	// numbers is the next request number per client.
	numbers map[string]uint64
}

func newReplica(t testing.TB) *replica {
	t.Helper()
	db := openDB(t)
	app, err := Open([]ed25519.PublicKey{issuer})(db, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	exe, err := execution.NewExecutor(db, app, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewExecutor: %v", err)
	}
	return &replica{db: db, ledger: app.(*Ledger), exe: exe, numbers: make(map[string]uint64)}
}

// op is one operation by sender.
type op struct {
	sender []byte
	bytes  []byte
}

// requests numbers ops as the clients would (one client per sender).
func (r *replica) requests(ops []op) []execution.Request {
	reqs := make([]execution.Request, len(ops))
	for i, o := range ops {
		r.numbers[string(o.sender)]++
		reqs[i] = execution.Request{ClientID: o.sender, RequestNumber: r.numbers[string(o.sender)], Operation: o.bytes}
	}
	return reqs
}

// applyBatch applies ops as the batch at sequence and returns the decoded
// results.
func (r *replica) applyBatch(t testing.TB, sequence uint64, ops []op) []*wire.LedgerResult {
	t.Helper()
	replies, err := r.exe.Apply(sequence, r.requests(ops))
	if err != nil {
		t.Fatalf("Apply(%d): %v", sequence, err)
	}
	if len(replies) != len(ops) {
		t.Fatalf("Apply(%d): %d replies for %d requests", sequence, len(replies), len(ops))
	}
	results := make([]*wire.LedgerResult, len(replies))
	for i, reply := range replies {
		res, err := DecodeResult(reply.Result)
		if err != nil {
			t.Fatalf("DecodeResult: %v", err)
		}
		results[i] = res
	}
	return results
}

// model is the ledger's rules over plain Go maps.
type model struct {
	balances  map[string]uint64
	histories map[string][]*wire.LedgerEntry
	total     uint64
}

func newModel() *model {
	return &model{balances: make(map[string]uint64), histories: make(map[string][]*wire.LedgerEntry)}
}

func (m *model) record(account []byte, e *wire.LedgerEntry) {
	h := m.histories[string(account)]
	e.SequenceInAccount = uint64(len(h) + 1)
	m.histories[string(account)] = append(h, e)
}

// apply returns the result the ledger must give (Error only says whether
// it is refused: "refused").
func (m *model) apply(sender []byte, operation []byte) *wire.LedgerResult {
	refused := &wire.LedgerResult{Error: "refused"}
	var o wire.LedgerOperation
	if err := unmarshal(operation, &o); err != nil {
		return refused
	}
	switch x := o.Op.(type) {
	case *wire.LedgerOperation_Mint:
		acct, amount := x.Mint.GetAccount(), x.Mint.GetAmount()
		if !bytes.Equal(sender, issuer) || len(acct) != 32 || amount == 0 || m.total+amount < m.total {
			return refused
		}
		m.total += amount
		m.balances[string(acct)] += amount
		m.record(acct, &wire.LedgerEntry{Kind: "mint", To: acct, Amount: amount, BalanceAfter: m.balances[string(acct)]})
		return &wire.LedgerResult{Balance: m.balances[string(acct)], TotalMinted: m.total}
	case *wire.LedgerOperation_Transfer:
		to, amount := x.Transfer.GetTo(), x.Transfer.GetAmount()
		if len(to) != 32 || amount == 0 || m.balances[string(sender)] < amount {
			return refused
		}
		m.balances[string(sender)] -= amount
		m.balances[string(to)] += amount
		m.record(sender, &wire.LedgerEntry{Kind: "transfer", From: sender, To: to, Amount: amount, BalanceAfter: m.balances[string(sender)]})
		if !bytes.Equal(sender, to) {
			m.record(to, &wire.LedgerEntry{Kind: "transfer", From: sender, To: to, Amount: amount, BalanceAfter: m.balances[string(to)]})
		}
		return &wire.LedgerResult{Balance: m.balances[string(sender)], TotalMinted: m.total}
	case *wire.LedgerOperation_Balance:
		if len(x.Balance.GetAccount()) != 32 {
			return refused
		}
		return &wire.LedgerResult{Balance: m.balances[string(x.Balance.GetAccount())], TotalMinted: m.total}
	case *wire.LedgerOperation_History:
		acct := x.History.GetAccount()
		if len(acct) != 32 {
			return refused
		}
		limit := int(x.History.GetLimit())
		if limit == 0 {
			limit = DefaultHistoryLimit
		}
		h := m.histories[string(acct)]
		h = h[max(0, len(h)-min(limit, MaxHistoryLimit)):]
		return &wire.LedgerResult{Balance: m.balances[string(acct)], TotalMinted: m.total, History: h}
	}
	return refused
}

// randomOp returns a random operation by one of accounts: mostly valid
// ones, with refusals of every kind among them.
func randomOp(rng *rand.Rand, accounts [][]byte) op {
	pick := func() []byte { return accounts[rng.Intn(len(accounts))] }
	amount := func() uint64 {
		switch rng.Intn(20) {
		case 0:
			return 0
		case 1:
			return ^uint64(0) - uint64(rng.Intn(3))
		default:
			return uint64(rng.Intn(300))
		}
	}
	account := func() []byte {
		if rng.Intn(25) == 0 {
			return pick()[:rng.Intn(32)]
		}
		return pick()
	}
	sender := pick()
	switch rng.Intn(10) {
	case 0, 1:
		if rng.Intn(4) != 0 {
			sender = issuer
		}
		return op{sender, EncodeMint(account(), amount())}
	case 2, 3, 4, 5:
		return op{sender, EncodeTransfer(account(), amount())}
	case 6, 7:
		return op{sender, EncodeBalance(account())}
	case 8:
		return op{sender, EncodeHistory(account(), uint32(rng.Intn(5)))}
	default:
		garbage := make([]byte, rng.Intn(12))
		rng.Read(garbage)
		return op{sender, garbage}
	}
}

func sameResult(got, want *wire.LedgerResult) error {
	if (got.GetError() != "") != (want.GetError() != "") {
		return fmt.Errorf("error %q, model refuses: %v", got.GetError(), want.GetError() != "")
	}
	if want.GetError() != "" {
		return nil
	}
	if got.GetBalance() != want.GetBalance() || got.GetTotalMinted() != want.GetTotalMinted() || len(got.GetHistory()) != len(want.GetHistory()) {
		return fmt.Errorf("got %v, want %v", got, want)
	}
	for i := range want.GetHistory() {
		if !bytes.Equal(marshal(got.GetHistory()[i]), marshal(want.GetHistory()[i])) {
			return fmt.Errorf("history entry %d = %v, want %v", i, got.GetHistory()[i], want.GetHistory()[i])
		}
	}
	return nil
}

// TestLedgerMatchesModel runs random batches of random operations by a few
// accounts through two replicas and a map model: the same results, the
// invariants after every batch, equal digests and histories.
func TestLedgerMatchesModel(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			accounts := [][]byte{issuer, alice, bob, testKey(3)}
			a, b, m := newReplica(t), newReplica(t), newModel()
			for seq := uint64(1); seq <= 150; seq++ {
				ops := make([]op, rng.Intn(8))
				for i := range ops {
					ops[i] = randomOp(rng, accounts)
				}
				got := a.applyBatch(t, seq, ops)
				other := b.applyBatch(t, seq, ops)
				for i, o := range ops {
					if err := sameResult(got[i], m.apply(o.sender, o.bytes)); err != nil {
						t.Fatalf("seed %d sequence %d op %d: %v", seed, seq, i, err)
					}
					if !bytes.Equal(marshal(got[i]), marshal(other[i])) {
						t.Fatalf("seed %d sequence %d op %d: replicas disagree: %v and %v", seed, seq, i, got[i], other[i])
					}
				}
				if err := a.ledger.Invariants(); err != nil {
					t.Fatalf("seed %d after sequence %d: %v", seed, seq, err)
				}
				if a.exe.StateDigest() != b.exe.StateDigest() {
					t.Fatalf("seed %d after sequence %d: digests differ", seed, seq)
				}
			}
			if m.total == 0 {
				t.Fatal("nothing was minted: the workload proves nothing")
			}
		})
	}
}

// TestStateTransfer copies a ledger to a fresh replica through the
// executor's snapshot chunks: same digest, histories and invariants, and
// the copy goes on executing like the source.
func TestStateTransfer(t *testing.T) {
	src, dst := newReplica(t), newReplica(t)
	rng := rand.New(rand.NewSource(7))
	accounts := [][]byte{issuer, alice, bob}
	for seq := uint64(1); seq <= 40; seq++ {
		src.applyBatch(t, seq, []op{randomOp(rng, accounts), {issuer, EncodeMint(alice, seq)}, {alice, EncodeTransfer(bob, 1)}})
	}
	snap, err := src.exe.TakeSnapshot()
	if err != nil {
		t.Fatalf("TakeSnapshot: %v", err)
	}
	defer snap.Release()
	if err := dst.exe.RestoreBegin(); err != nil {
		t.Fatalf("RestoreBegin: %v", err)
	}
	for start := []byte{}; ; {
		entries, next, err := snap.Chunk(start, 512)
		if err != nil {
			t.Fatalf("Chunk: %v", err)
		}
		if err := dst.exe.RestoreChunk(entries); err != nil {
			t.Fatalf("RestoreChunk: %v", err)
		}
		if len(next) == 0 {
			break
		}
		start = next
	}
	digest, err := dst.exe.RestoreFinishExpect(snap.Digest())
	if err != nil || digest != src.exe.StateDigest() {
		t.Fatalf("RestoreFinishExpect = %x, %v; want the source digest", digest, err)
	}
	if err := dst.ledger.Invariants(); err != nil {
		t.Fatalf("restored ledger: %v", err)
	}
	dst.numbers = src.numbers
	numbers := make(map[string]uint64)
	for k, v := range src.numbers {
		numbers[k] = v
	}
	src.numbers = numbers
	next := []op{{alice, EncodeTransfer(bob, 3)}, {bob, EncodeHistory(bob, 0)}}
	got, want := dst.applyBatch(t, 41, next), src.applyBatch(t, 41, next)
	for i := range got {
		if !bytes.Equal(marshal(got[i]), marshal(want[i])) {
			t.Fatalf("after transfer, op %d: %v, source %v", i, got[i], want[i])
		}
	}
	if dst.exe.StateDigest() != src.exe.StateDigest() {
		t.Fatal("digests differ after the first batch past the transfer")
	}
}

// TestCheckTransferEntry: state transfer refuses entries the ledger could
// not have stored.
func TestCheckTransferEntry(t *testing.T) {
	l := newLedger(t)
	full := func(k []byte) []byte { return append([]byte(storage.PrefixApp+"k/"), k...) }
	entry := marshal(&wire.LedgerEntry{SequenceInAccount: 1, Kind: "mint", To: alice, Amount: 5, BalanceAfter: 5})
	good := []struct{ key, value []byte }{
		{full([]byte(keyTotal)), encodeUint(5)},
		{full(balanceKey(alice)), encodeUint(5)},
		{full(countKey(alice)), encodeUint(1)},
		{full(historyKey(alice, 1)), entry},
	}
	for _, g := range good {
		if err := l.CheckTransferEntry(g.key, g.value); err != nil {
			t.Fatalf("CheckTransferEntry(%q) refused a valid entry: %v", g.key, err)
		}
	}
	bad := []struct{ key, value []byte }{
		{full([]byte("x/other")), encodeUint(5)},
		{[]byte(storage.PrefixApp + "m/digest"), make([]byte, 32)},
		{full([]byte(keyTotal)), []byte{1, 2, 3}},
		{full(balanceKey(alice[:31])), encodeUint(5)},
		{full(historyKey(alice, 2)), entry},
		{full(historyKey(bob, 1)), entry},
		{full(historyKey(alice, 1)), append(bytes.Clone(entry), 0x30, 0x01)},
		{full(historyKey(alice, 1)), marshal(&wire.LedgerEntry{SequenceInAccount: 1, Kind: "gift", To: alice, Amount: 5})},
		{full(historyKey(alice, 1)), []byte{0xff}},
	}
	for i, b := range bad {
		if err := l.CheckTransferEntry(b.key, b.value); err == nil {
			t.Fatalf("bad entry %d (%q) accepted", i, b.key)
		}
	}
}

// TestInvariantsDetectCorruption writes inconsistent states behind the
// ledger's back and checks that Invariants names each.
func TestInvariantsDetectCorruption(t *testing.T) {
	corruptions := map[string]func(kv *execution.KV){
		"balance without history": func(kv *execution.KV) { set(kv, balanceKey(bob), encodeUint(0)) },
		"sum differs from total":  func(kv *execution.KV) { set(kv, keyTotal, encodeUint(1001)) },
		"history ends elsewhere": func(kv *execution.KV) {
			set(kv, balanceKey(alice), encodeUint(751))
			set(kv, balanceKey(bob), encodeUint(249))
		},
		"history gap": func(kv *execution.KV) {
			_ = kv.Delete(historyKey(alice, 2))
		},
		"count differs": func(kv *execution.KV) { set(kv, countKey(alice), encodeUint(4)) },
		"foreign key":   func(kv *execution.KV) { set(kv, "l/zzz", encodeUint(4)) },
		"entry balance does not follow": func(kv *execution.KV) {
			set(kv, historyKey(bob, 1), marshal(&wire.LedgerEntry{SequenceInAccount: 1, Kind: "transfer", From: alice, To: bob, Amount: 300, BalanceAfter: 301}))
		},
	}
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			l := newLedger(t)
			mustOK(t, run(t, l, issuer, EncodeMint(alice, 1000)))
			mustOK(t, run(t, l, alice, EncodeTransfer(bob, 300)))
			mustOK(t, run(t, l, bob, EncodeTransfer(alice, 50)))
			checkInvariants(t, l)
			if _, err := l.kv.Atomically(func() []byte { corrupt(l.kv); return nil }); err != nil {
				t.Fatalf("corrupt: %v", err)
			}
			if err := l.Invariants(); err == nil {
				t.Fatal("Invariants found nothing wrong")
			}
		})
	}
}

func set[K []byte | string](kv *execution.KV, key K, value []byte) {
	if err := kv.Set([]byte(key), value); err != nil {
		panic(err)
	}
}

// TestRestoreRefusesAnInvalidLedger: Restore of a KV snapshot that is not
// a valid ledger changes nothing; a valid one is taken.
func TestRestoreRefusesAnInvalidLedger(t *testing.T) {
	l := newLedger(t)
	mustOK(t, run(t, l, issuer, EncodeMint(alice, 10)))
	good, err := l.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	other := newLedger(t)
	if _, err := other.kv.Atomically(func() []byte { set(other.kv, keyTotal, encodeUint(3)); return nil }); err != nil {
		t.Fatal(err)
	}
	bad, err := other.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	before := l.Digest()
	if err := l.Restore(bad); err == nil {
		t.Fatal("Restore accepted a snapshot whose total has no balances")
	}
	if l.Digest() != before {
		t.Fatal("a refused Restore changed the state")
	}
	checkInvariants(t, l)
	fresh := newLedger(t)
	if err := fresh.Restore(good); err != nil || fresh.Digest() != before {
		t.Fatalf("Restore of a valid snapshot: %v", err)
	}
}
