package ledger

import (
	"bytes"
	"fmt"
	"math"

	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// execute runs one operation inside the KV's open batch. Every check
// comes before the first write, so a refusal changes nothing.
func (l *Ledger) execute(clientID, op []byte) *wire.LedgerResult {
	var decoded wire.LedgerOperation
	if err := proto.Unmarshal(op, &decoded); err != nil {
		return refuse("malformed operation")
	}
	if len(clientID) < AccountSize {
		return refuse("no sending account: client ID of %d bytes, want at least %d", len(clientID), AccountSize)
	}
	sender := clientID[:AccountSize]
	switch o := decoded.Op.(type) {
	case *wire.LedgerOperation_Mint:
		return l.mint(sender, o.Mint.GetAccount(), o.Mint.GetAmount())
	case *wire.LedgerOperation_Transfer:
		return l.transfer(sender, o.Transfer.GetTo(), o.Transfer.GetAmount())
	case *wire.LedgerOperation_Balance:
		return l.balanceOf("balance", o.Balance.GetAccount())
	case *wire.LedgerOperation_History:
		return l.history(o.History.GetAccount(), o.History.GetLimit())
	default:
		return refuse("malformed operation: no operation set")
	}
}

func refuse(format string, args ...any) *wire.LedgerResult {
	return &wire.LedgerResult{Error: fmt.Sprintf(format, args...)}
}

func checkAccount(op, name string, account []byte) *wire.LedgerResult {
	if len(account) != AccountSize {
		return refuse("%s: %s must be %d bytes, got %d", op, name, AccountSize, len(account))
	}
	return nil
}

func (l *Ledger) mint(sender, account []byte, amount uint64) *wire.LedgerResult {
	if _, ok := l.issuers[[AccountSize]byte(sender)]; !ok {
		return refuse("mint: sender %x is not an issuer", sender)
	}
	if r := checkAccount("mint", "account", account); r != nil {
		return r
	}
	if amount == 0 {
		return refuse("mint: amount must be positive")
	}
	total := l.number([]byte(keyTotal))
	if amount > math.MaxUint64-total {
		return refuse("mint: total minted %d plus %d would overflow", total, amount)
	}
	// balance <= total, so it cannot overflow either.
	balance := l.number(balanceKey(account)) + amount
	l.setNumber([]byte(keyTotal), total+amount)
	l.setNumber(balanceKey(account), balance)
	l.appendHistory(account, &wire.LedgerEntry{Kind: kindMint, To: account, Amount: amount, BalanceAfter: balance})
	return &wire.LedgerResult{Balance: balance, TotalMinted: total + amount}
}

func (l *Ledger) transfer(sender, to []byte, amount uint64) *wire.LedgerResult {
	if r := checkAccount("transfer", "recipient", to); r != nil {
		return r
	}
	if amount == 0 {
		return refuse("transfer: amount must be positive")
	}
	balance := l.number(balanceKey(sender))
	if balance < amount {
		return refuse("insufficient funds: balance %d, amount %d", balance, amount)
	}
	entry := &wire.LedgerEntry{Kind: kindTransfer, From: sender, To: to, Amount: amount}
	if bytes.Equal(sender, to) {
		// One account touched: one entry, balance unchanged.
		entry.BalanceAfter = balance
		l.appendHistory(sender, entry)
	} else {
		senderAfter := balance - amount
		// The recipient's balance is at most total - balance: no overflow.
		toAfter := l.number(balanceKey(to)) + amount
		l.setNumber(balanceKey(sender), senderAfter)
		l.setNumber(balanceKey(to), toAfter)
		entry.BalanceAfter = senderAfter
		l.appendHistory(sender, entry)
		entry.BalanceAfter = toAfter
		l.appendHistory(to, entry)
	}
	return &wire.LedgerResult{Balance: l.number(balanceKey(sender)), TotalMinted: l.number([]byte(keyTotal))}
}

func (l *Ledger) balanceOf(op string, account []byte) *wire.LedgerResult {
	if r := checkAccount(op, "account", account); r != nil {
		return r
	}
	return &wire.LedgerResult{Balance: l.number(balanceKey(account)), TotalMinted: l.number([]byte(keyTotal))}
}

func (l *Ledger) history(account []byte, limit uint32) *wire.LedgerResult {
	result := l.balanceOf("history", account)
	if result.Error != "" {
		return result
	}
	switch {
	case limit == 0:
		limit = DefaultHistoryLimit
	case limit > MaxHistoryLimit:
		limit = MaxHistoryLimit
	}
	count := l.number(countKey(account))
	first := uint64(1)
	if count > uint64(limit) {
		first = count - uint64(limit) + 1
	}
	for n := first; n <= count; n++ {
		value, found := l.kv.Get(historyKey(account, n))
		var e wire.LedgerEntry
		if !found || proto.Unmarshal(value, &e) != nil {
			// Only a storage failure (which fails the batch) or a
			// corrupt database gets here; Invariants reports the latter.
			return refuse("history: entry %d of %d unreadable", n, count)
		}
		result.History = append(result.History, &e)
	}
	return result
}

// appendHistory stores entry as the next entry of account's history,
// numbering it. It marshals entry at once, so the caller may reuse it.
func (l *Ledger) appendHistory(account []byte, entry *wire.LedgerEntry) {
	n := l.number(countKey(account)) + 1
	entry.SequenceInAccount = n
	l.set(historyKey(account, n), marshal(entry))
	l.setNumber(countKey(account), n)
}

// number reads an 8-byte number; absent (or, in a corrupt database that
// Invariants reports, malformed) reads as 0.
func (l *Ledger) number(key []byte) uint64 {
	value, found := l.kv.Get(key)
	if !found {
		return 0
	}
	v, err := decodeUint(value)
	if err != nil {
		return 0
	}
	return v
}

func (l *Ledger) setNumber(key []byte, v uint64) { l.set(key, encodeUint(v)) }

// set writes one entry of the open batch. The ledger's keys and values are
// far under the KV's limits and execute runs inside a batch (Atomically),
// so a failure is a broken invariant of this package.
func (l *Ledger) set(key, value []byte) {
	if err := l.kv.Set(key, value); err != nil {
		panic(fmt.Sprintf("ledger: write inside a batch failed: %v", err))
	}
}
