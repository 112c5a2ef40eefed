package crypto

import (
	"crypto/ed25519"
	"fmt"
	"io"
)

// GenerateKey returns a new Ed25519 private key drawn from rand. If rand is
// nil the operating system's secure random source is used.
func GenerateKey(rand io.Reader) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("crypto: generate ed25519 key: %w", err)
	}
	return key, nil
}
