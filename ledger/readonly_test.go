package ledger

import (
	"bytes"
	"testing"
)

// Balance and history are read-only and answer the bytes ExecuteRequest
// would; mint and transfer are not read-only.
func TestLedgerReadOnlyMatchesExecute(t *testing.T) {
	l := newLedger(t)
	mustOK(t, run(t, l, issuer, EncodeMint(alice, 10)))
	mustOK(t, run(t, l, alice, EncodeTransfer(bob, 3)))
	clientID := append(bytes.Clone(alice), "session-1"...)
	for _, op := range [][]byte{EncodeBalance(alice), EncodeBalance(bob), EncodeHistory(alice, 0), EncodeHistory(bob, 1)} {
		got, ok := l.ReadOnly(clientID, op)
		if !ok {
			t.Fatalf("operation %x not read-only", op)
		}
		if want := l.ExecuteRequest(clientID, op); !bytes.Equal(got, want) {
			t.Fatalf("ReadOnly(%x) = %x, ExecuteRequest = %x", op, got, want)
		}
	}
	for _, op := range [][]byte{EncodeMint(alice, 1), EncodeTransfer(bob, 1), []byte("garbage")} {
		if _, ok := l.ReadOnly(clientID, op); ok {
			t.Fatalf("operation %x classified read-only", op)
		}
	}
	checkInvariants(t, l)
}
