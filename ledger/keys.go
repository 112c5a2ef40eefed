package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// The ledger's KV keys. Accounts are raw 32-byte keys; numbers are 8-byte
// big-endian values.
//
//	l/b/<account>            balance
//	l/h/<account>/<be64 n>   history entry n (a marshalled wire.LedgerEntry)
//	l/n/<account>            number of history entries
//	l/total                  total minted
const (
	prefixAll     = "l/"
	prefixBalance = "l/b/"
	prefixHistory = "l/h/"
	prefixCount   = "l/n/"
	keyTotal      = "l/total"
)

// AccountSize is the size of an account: an Ed25519 public key.
const AccountSize = ed25519.PublicKeySize

func balanceKey(account []byte) []byte {
	return append([]byte(prefixBalance), account...)
}

func countKey(account []byte) []byte {
	return append([]byte(prefixCount), account...)
}

func historyKey(account []byte, n uint64) []byte {
	key := make([]byte, 0, len(prefixHistory)+AccountSize+1+8)
	key = append(append(append(key, prefixHistory...), account...), '/')
	return binary.BigEndian.AppendUint64(key, n)
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("number of %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// keyKind is what a ledger KV key names.
type keyKind int

const (
	kindBalance keyKind = iota + 1
	kindHistory
	kindCount
	kindTotal
)

// parsedKey is a ledger KV key taken apart.
type parsedKey struct {
	kind    keyKind
	account []byte // not for kindTotal
	n       uint64 // kindHistory only
}

// parseKey takes a ledger KV key apart; any other key is an error.
func parseKey(key []byte) (parsedKey, error) {
	switch {
	case bytes.Equal(key, []byte(keyTotal)):
		return parsedKey{kind: kindTotal}, nil
	case bytes.HasPrefix(key, []byte(prefixBalance)) && len(key) == len(prefixBalance)+AccountSize:
		return parsedKey{kind: kindBalance, account: key[len(prefixBalance):]}, nil
	case bytes.HasPrefix(key, []byte(prefixCount)) && len(key) == len(prefixCount)+AccountSize:
		return parsedKey{kind: kindCount, account: key[len(prefixCount):]}, nil
	case bytes.HasPrefix(key, []byte(prefixHistory)) && len(key) == len(prefixHistory)+AccountSize+1+8 &&
		key[len(prefixHistory)+AccountSize] == '/':
		rest := key[len(prefixHistory):]
		return parsedKey{kind: kindHistory, account: rest[:AccountSize], n: binary.BigEndian.Uint64(rest[AccountSize+1:])}, nil
	}
	return parsedKey{}, errors.New("not a ledger key")
}

// checkEntry validates a stored value of a parsed key: numbers are 8
// bytes; a history entry is a well-formed LedgerEntry of its own account
// and number. It returns the decoded entry for a history key.
func checkEntry(k parsedKey, value []byte) (*wire.LedgerEntry, error) {
	if k.kind != kindHistory {
		_, err := decodeUint(value)
		return nil, err
	}
	var e wire.LedgerEntry
	if err := proto.Unmarshal(value, &e); err != nil {
		return nil, fmt.Errorf("history entry: %w", err)
	}
	if !bytes.Equal(marshal(&e), value) {
		return nil, errors.New("history entry not in canonical encoding")
	}
	if e.GetSequenceInAccount() != k.n || k.n == 0 {
		return nil, fmt.Errorf("history entry numbered %d under key number %d", e.GetSequenceInAccount(), k.n)
	}
	if e.GetAmount() == 0 || len(e.GetTo()) != AccountSize {
		return nil, errors.New("history entry: zero amount or bad recipient")
	}
	switch e.GetKind() {
	case kindMint:
		if len(e.GetFrom()) != 0 || !bytes.Equal(e.GetTo(), k.account) {
			return nil, errors.New("mint entry: has a sender or names another account")
		}
	case kindTransfer:
		if len(e.GetFrom()) != AccountSize || (!bytes.Equal(e.GetFrom(), k.account) && !bytes.Equal(e.GetTo(), k.account)) {
			return nil, errors.New("transfer entry: bad sender or does not touch its account")
		}
	default:
		return nil, fmt.Errorf("history entry of unknown kind %q", e.GetKind())
	}
	return &e, nil
}
