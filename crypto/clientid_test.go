package crypto

import (
	"crypto/ed25519"
	"testing"
)

func TestClientIDBounds(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	pub[0] = 9
	for _, n := range []int{0, 8, MaxClientSessionSize} {
		id, err := ClientID(pub, make([]byte, n))
		if err != nil {
			t.Fatalf("session of %d bytes: %v", n, err)
		}
		got, err := ClientPublicKey(id)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("session of %d bytes: key %x, %v", n, got, err)
		}
	}
	if _, err := ClientID(pub, make([]byte, MaxClientSessionSize+1)); err == nil {
		t.Error("an oversized session was accepted")
	}
	for _, n := range []int{0, 31, ed25519.PublicKeySize + MaxClientSessionSize + 1} {
		if _, err := ClientPublicKey(make([]byte, n)); err == nil {
			t.Errorf("a client id of %d bytes was accepted", n)
		}
	}
	id, _ := ClientID(pub, []byte{1, 2})
	key, _ := ClientPublicKey(id)
	_ = append(key, 7)
	if id[ed25519.PublicKeySize] != 1 {
		t.Error("appending to the returned key overwrote the session")
	}
}
