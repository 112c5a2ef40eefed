package crypto

import (
	"crypto/ed25519"
	"math/rand"
	"testing"
)

// testKey returns a deterministic private key derived from seed.
func testKey(t testing.TB, seed int64) ed25519.PrivateKey {
	t.Helper()
	key, err := GenerateKey(rand.New(rand.NewSource(seed)))
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return key
}
