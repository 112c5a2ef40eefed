package keyfile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

func TestKeyFileRoundTrip(t *testing.T) {
	key := cryptotest.Key(t, 8)
	path := filepath.Join(t.TempDir(), "replica.key")
	if err := Write(path, key); err != nil {
		t.Fatalf("Write: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode = %#o, want 0600", perm)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !strings.Contains(string(content), "PBFTNODE ED25519 PRIVATE KEY") {
		t.Fatalf("key file does not use the PBFTNODE ED25519 PRIVATE KEY block:\n%s", content)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if !bytes.Equal(got, key) {
		t.Fatal("Read returned a different key")
	}
}

func TestWriteKeyFileRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replica.key")
	first := cryptotest.Key(t, 9)
	if err := Write(path, first); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := Write(path, cryptotest.Key(t, 10)); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second Write: err = %v, want os.ErrExist", err)
	}
	got, err := Read(path)
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("existing key was changed: %v", err)
	}
}

func TestWriteKeyFileRefusesMalformedKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replica.key")
	if err := Write(path, make(ed25519.PrivateKey, 32)); err == nil {
		t.Fatal("Write accepted a 32-byte private key")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Write left a file behind after refusing: %v", err)
	}
}

func TestReadKeyFileRefusesLooseMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o620} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "replica.key")
			if err := Write(path, cryptotest.Key(t, 11)); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatalf("chmod: %v", err)
			}
			_, err := Read(path)
			if err == nil {
				t.Fatalf("Read accepted a key file with mode %#o", mode)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			if wantMode := fmt.Sprintf("%#o", mode.Perm()); !strings.Contains(msg, wantMode) {
				t.Errorf("error %q does not name the mode %s", msg, wantMode)
			}
		})
	}
}

func TestReadKeyFileAcceptsOwnerOnlyModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replica.key")
	key := cryptotest.Key(t, 12)
	if err := Write(path, key); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	got, err := Read(path)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("Read on a 0400 file: %v", err)
	}
}

func TestReadKeyFileRefusesMalformedContent(t *testing.T) {
	seed := cryptotest.Key(t, 13).Seed()
	block := func(typ string, body []byte, headers map[string]string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: body}))
	}
	valid := block("PBFTNODE ED25519 PRIVATE KEY", seed, nil)
	tests := map[string]string{
		"empty":          "",
		"not PEM":        "this is not a key\n",
		"raw hex seed":   EncodePublicKey(seed),
		"wrong type":     block("PRIVATE KEY", seed, nil),
		"short seed":     block("PBFTNODE ED25519 PRIVATE KEY", seed[:31], nil),
		"long seed":      block("PBFTNODE ED25519 PRIVATE KEY", append(bytes.Clone(seed), 0), nil),
		"full key":       block("PBFTNODE ED25519 PRIVATE KEY", ed25519.NewKeyFromSeed(seed), nil),
		"headers":        block("PBFTNODE ED25519 PRIVATE KEY", seed, map[string]string{"Proc-Type": "4,ENCRYPTED"}),
		"trailing data":  valid + "garbage\n",
		"two blocks":     valid + valid,
		"oversized file": valid + strings.Repeat(" ", 8192),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "replica.key")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatalf("write: %v", err)
			}
			if _, err := Read(path); err == nil {
				t.Fatal("Read accepted malformed content")
			} else if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}

	// Surrounding whitespace is tolerated.
	path := filepath.Join(t.TempDir(), "replica.key")
	if err := os.WriteFile(path, []byte("\n"+valid+"\n\n"), 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := Read(path); err != nil {
		t.Fatalf("Read refused a key surrounded by blank lines: %v", err)
	}
}

func TestReadKeyFileMissingAndDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "absent.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want os.ErrNotExist", err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	if _, err := Read(sub); err == nil {
		t.Fatal("Read accepted a directory")
	}
}

func TestPublicKeyHexRoundTrip(t *testing.T) {
	pub := cryptotest.Key(t, 14).Public().(ed25519.PublicKey)
	encoded := EncodePublicKey(pub)
	if len(encoded) != 64 || strings.ToLower(encoded) != encoded {
		t.Fatalf("EncodePublicKey = %q, want 64 lowercase hex characters", encoded)
	}
	decoded, err := DecodePublicKey(encoded)
	if err != nil || !bytes.Equal(decoded, pub) {
		t.Fatalf("DecodePublicKey(EncodePublicKey(pub)) = %x, %v", decoded, err)
	}
	for _, bad := range []string{"", encoded[:62], encoded + "00", "zz" + encoded[2:], encoded[:63]} {
		if _, err := DecodePublicKey(bad); err == nil {
			t.Errorf("DecodePublicKey(%q) succeeded", bad)
		}
	}
}
