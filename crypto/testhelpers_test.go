package crypto

import (
	"crypto/ed25519"
	"testing"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

// testKey returns a deterministic private key derived from seed.
func testKey(t testing.TB, seed int64) ed25519.PrivateKey {
	t.Helper()
	return cryptotest.Key(t, seed)
}
