package crypto

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"math/rand"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey(rand.New(rand.NewSource(7)))
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	b, err := GenerateKey(rand.New(rand.NewSource(7)))
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("GenerateKey is not deterministic in its random source")
	}
	if len(a) != ed25519.PrivateKeySize {
		t.Fatalf("key length = %d, want %d", len(a), ed25519.PrivateKeySize)
	}
	fromOS, err := GenerateKey(nil)
	if err != nil {
		t.Fatalf("GenerateKey(nil): %v", err)
	}
	if bytes.Equal(fromOS, a) {
		t.Fatal("GenerateKey(nil) returned the seeded key")
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 5))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("GenerateKey on a short reader: err = %v, want io.ErrUnexpectedEOF", err)
	}
}
