package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"

	"github.com/pbftnode/pbftnode/wire"
)

// Invariants walks the committed state (O(state); not allowed during a
// batch) and returns an error naming the first violation found:
//
//   - an entry under "l/" that is not a ledger key, or whose value the
//     ledger could not have stored;
//   - the sum of the balances differs from the total minted (or
//     overflows);
//   - an account's history is not numbered 1..n without gaps, n differs
//     from its stored count, an entry's balance does not follow from the
//     previous one (mint and incoming transfer add the amount, outgoing
//     transfer subtracts it, a transfer to oneself keeps it), or the last
//     entry's balance is not the account's balance.
//
// It returns nil for a valid ledger, the empty one included.
func (l *Ledger) Invariants() error {
	w := newWalker()
	if err := l.kv.Scan([]byte(prefixAll), w.visit); err != nil {
		return fmt.Errorf("ledger invariants: %w", err)
	}
	if err := w.finish(); err != nil {
		return fmt.Errorf("ledger invariants: %w", err)
	}
	return nil
}

// accountState is what the walk found about one account.
type accountState struct {
	balance, count       uint64
	hasBalance, hasCount bool
	// entries is the number of history entries seen; last the balance
	// after the last one.
	entries, last uint64
}

// walker checks the ledger's entries visited in key order.
type walker struct {
	accounts map[string]*accountState
	order    []string // accounts in the order first seen, for messages
	total    uint64
	hasTotal bool
}

func newWalker() *walker { return &walker{accounts: make(map[string]*accountState)} }

func (w *walker) account(a []byte) *accountState {
	s := w.accounts[string(a)]
	if s == nil {
		s = new(accountState)
		w.accounts[string(a)] = s
		w.order = append(w.order, string(a))
	}
	return s
}

func (w *walker) visit(key, value []byte) error {
	k, err := parseKey(key)
	if err != nil {
		return fmt.Errorf("key %x: %w", truncate(key), err)
	}
	entry, err := checkEntry(k, value)
	if err != nil {
		return fmt.Errorf("key %x: %w", truncate(key), err)
	}
	switch k.kind {
	case kindTotal:
		w.total, w.hasTotal = decodeNumber(value), true
	case kindBalance:
		s := w.account(k.account)
		s.balance, s.hasBalance = decodeNumber(value), true
	case kindCount:
		s := w.account(k.account)
		s.count, s.hasCount = decodeNumber(value), true
	case kindHistory:
		return w.visitHistory(w.account(k.account), k, entry)
	}
	return nil
}

// visitHistory checks entry, the next history entry of account k.account
// (history keys sort by number within an account).
func (w *walker) visitHistory(s *accountState, k parsedKey, e *wire.LedgerEntry) error {
	if k.n != s.entries+1 {
		return fmt.Errorf("account %x: history entry %d follows entry %d", k.account, k.n, s.entries)
	}
	var want uint64
	var overflow uint64
	switch {
	case e.GetKind() == kindMint || !bytes.Equal(e.GetFrom(), k.account):
		want, overflow = bits.Add64(s.last, e.GetAmount(), 0)
	case bytes.Equal(e.GetTo(), k.account):
		want = s.last
	default:
		want, overflow = bits.Sub64(s.last, e.GetAmount(), 0)
	}
	if overflow != 0 || want != e.GetBalanceAfter() {
		return fmt.Errorf("account %x: history entry %d says balance %d after %s of %d from balance %d",
			k.account, k.n, e.GetBalanceAfter(), e.GetKind(), e.GetAmount(), s.last)
	}
	s.entries, s.last = k.n, want
	return nil
}

// finish checks what needs the whole walk.
func (w *walker) finish() error {
	var sum uint64
	for _, a := range w.order {
		s := w.accounts[a]
		if s.count != s.entries || s.hasCount != (s.entries > 0) {
			return fmt.Errorf("account %x: history count %d (stored %v) but %d entries", a, s.count, s.hasCount, s.entries)
		}
		if s.balance != s.last || s.hasBalance != (s.entries > 0) {
			return fmt.Errorf("account %x: balance %d (stored %v) but history ends at %d", a, s.balance, s.hasBalance, s.last)
		}
		var carry uint64
		sum, carry = bits.Add64(sum, s.balance, 0)
		if carry != 0 {
			return errors.New("sum of balances overflows")
		}
	}
	if sum != w.total || w.hasTotal != (len(w.order) > 0) {
		return fmt.Errorf("sum of balances %d differs from total minted %d (stored %v)", sum, w.total, w.hasTotal)
	}
	return nil
}

// decodeNumber decodes a value checkEntry accepted as a number.
func decodeNumber(value []byte) uint64 {
	v, _ := decodeUint(value)
	return v
}
