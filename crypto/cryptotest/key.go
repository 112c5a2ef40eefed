package cryptotest

import (
	"crypto/ed25519"
	"math/rand"
	"testing"
)

// Key returns the private key that crypto.GenerateKey draws from a
// math/rand source seeded with seed: the same seed always gives the same
// key. It fails the test if generation fails.
func Key(t testing.TB, seed int64) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.New(rand.NewSource(seed)))
	if err != nil {
		t.Fatalf("generate key from seed %d: %v", seed, err)
	}
	return key
}
