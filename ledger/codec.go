package ledger

import (
	"encoding/hex"
	"fmt"

	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// History entry kinds (wire.LedgerEntry.Kind).
const (
	kindMint     = "mint"
	kindTransfer = "transfer"
)

// History limits: a history query with limit 0 returns
// DefaultHistoryLimit entries, and never more than MaxHistoryLimit.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
)

// marshal encodes a ledger message deterministically.
func marshal(m proto.Message) []byte {
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// Ledger messages hold only bytes, integers and strings (the
		// ledger's own, valid UTF-8): marshalling cannot fail.
		panic(fmt.Sprintf("ledger: marshal %T: %v", m, err))
	}
	return out
}

// EncodeMint encodes a mint of amount to account.
func EncodeMint(account []byte, amount uint64) []byte {
	return marshal(&wire.LedgerOperation{Op: &wire.LedgerOperation_Mint{Mint: &wire.LedgerMint{Account: account, Amount: amount}}})
}

// EncodeTransfer encodes a transfer of amount from the sender to to.
func EncodeTransfer(to []byte, amount uint64) []byte {
	return marshal(&wire.LedgerOperation{Op: &wire.LedgerOperation_Transfer{Transfer: &wire.LedgerTransfer{To: to, Amount: amount}}})
}

// EncodeBalance encodes a read of account's balance.
func EncodeBalance(account []byte) []byte {
	return marshal(&wire.LedgerOperation{Op: &wire.LedgerOperation_Balance{Balance: &wire.LedgerBalance{Account: account}}})
}

// EncodeHistory encodes a read of the newest limit entries of account's
// history (0 means DefaultHistoryLimit; over MaxHistoryLimit reads
// MaxHistoryLimit).
func EncodeHistory(account []byte, limit uint32) []byte {
	return marshal(&wire.LedgerOperation{Op: &wire.LedgerOperation_History{History: &wire.LedgerHistory{Account: account, Limit: limit}}})
}

// DecodeResult decodes a result returned by the ledger.
func DecodeResult(b []byte) (*wire.LedgerResult, error) {
	var r wire.LedgerResult
	if err := proto.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode ledger result: %w", err)
	}
	return &r, nil
}

// ParseAccount parses an account written as the 64 hex digits of its
// Ed25519 public key (what `pbftnode keygen` prints).
func ParseAccount(hex string) ([]byte, error) {
	pub, err := keyfile.DecodePublicKey(hex)
	if err != nil {
		return nil, fmt.Errorf("ledger: account: %w", err)
	}
	return pub, nil
}

// EntryJSON is a history entry as the CLI and the gateway print it in
// JSON: accounts in hex, From empty for a mint.
type EntryJSON struct {
	SequenceInAccount uint64 `json:"sequence_in_account"`
	Kind              string `json:"kind"`
	From              string `json:"from"`
	To                string `json:"to"`
	Amount            uint64 `json:"amount"`
	BalanceAfter      uint64 `json:"balance_after"`
}

// EntryJSONOf is e in its JSON form.
func EntryJSONOf(e *wire.LedgerEntry) EntryJSON {
	return EntryJSON{
		SequenceInAccount: e.SequenceInAccount, Kind: e.Kind,
		From: hex.EncodeToString(e.From), To: hex.EncodeToString(e.To),
		Amount: e.Amount, BalanceAfter: e.BalanceAfter,
	}
}
