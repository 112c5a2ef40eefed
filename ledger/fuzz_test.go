package ledger

import "testing"

// FuzzExecuteRequest feeds hostile operation bytes and client IDs to a
// ledger: no panic, a decodable result, and the invariants hold after
// every operation.
func FuzzExecuteRequest(f *testing.F) {
	f.Add([]byte(issuer), EncodeMint(alice, 10))
	f.Add([]byte(alice), EncodeTransfer(bob, 3))
	f.Add([]byte(bob), EncodeHistory(alice, 7))
	f.Add([]byte(bob), EncodeBalance(alice))
	f.Add([]byte("short"), []byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte(alice), []byte{0x12, 0x80, 0x80, 0x80, 0x80, 0x10})
	l := newLedger(f)
	mustOK(f, run(f, l, issuer, EncodeMint(alice, 100)))
	f.Fuzz(func(t *testing.T, clientID, op []byte) {
		if _, err := DecodeResult(l.ExecuteRequest(clientID, op)); err != nil {
			t.Fatalf("undecodable result: %v", err)
		}
		if err := l.Invariants(); err != nil {
			t.Fatalf("after op %x by %x: %v", op, clientID, err)
		}
	})
}
