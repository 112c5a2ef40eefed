package keyfile

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

// cheapKDF keeps the tests fast; the format and the code paths are the
// same as with DefaultKDFParams.
var cheapKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func passphrase(p string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(p), nil }
}

func writeEncrypted(t *testing.T, seed int64, pass string) (string, []byte) {
	t.Helper()
	key := cryptotest.Key(t, seed)
	path := filepath.Join(t.TempDir(), "replica.key")
	if err := WriteEncryptedParams(path, key, []byte(pass), cheapKDF); err != nil {
		t.Fatalf("WriteEncryptedParams: %v", err)
	}
	return path, key
}

func TestEncryptedKeyFileRoundTripDefaultParams(t *testing.T) {
	key := cryptotest.Key(t, 20)
	path := filepath.Join(t.TempDir(), "replica.key")
	if err := WriteEncrypted(path, key, []byte("correct horse")); err != nil {
		t.Fatalf("WriteEncrypted: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode = %#o, want 0600", perm)
	}
	content, _ := os.ReadFile(path)
	if !strings.Contains(string(content), "PBFTNODE ENCRYPTED ED25519 PRIVATE KEY") || !strings.Contains(string(content), "Kdf: argon2id") {
		t.Fatalf("unexpected file:\n%s", content)
	}
	if bytes.Contains(content, []byte(base64.StdEncoding.EncodeToString(key.Seed())[:20])) {
		t.Fatal("the seed appears in clear")
	}
	got, err := ReadWithPassphrase(path, passphrase("correct horse"))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("ReadWithPassphrase: %v", err)
	}
	if enc, err := IsEncrypted(path); err != nil || !enc {
		t.Fatalf("IsEncrypted = %v, %v", enc, err)
	}
}

func TestEncryptedKeyFileRefusesOverwriteAndEmptyPassphrase(t *testing.T) {
	path, key := writeEncrypted(t, 21, "pw")
	if err := WriteEncryptedParams(path, key, []byte("pw"), cheapKDF); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwrite: err = %v, want os.ErrExist", err)
	}
	other := filepath.Join(t.TempDir(), "k")
	if err := WriteEncryptedParams(other, key, nil, cheapKDF); err == nil {
		t.Fatal("empty passphrase accepted")
	}
	if err := WriteEncryptedParams(other, key, []byte("pw"), KDFParams{Time: 1, MemoryKiB: 1 << 30, Threads: 1}); err == nil {
		t.Fatal("out-of-bounds parameters accepted on write")
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused write left a file: %v", err)
	}
}

func TestEncryptedKeyFileWrongPassphrase(t *testing.T) {
	path, _ := writeEncrypted(t, 22, "right")
	_, err := ReadWithPassphrase(path, passphrase("wrong"))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("err = %v, want ErrWrongPassphrase", err)
	}
	if !strings.Contains(err.Error(), "wrong passphrase or corrupted key file") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q is not clear", err)
	}
}

func TestEncryptedKeyFileNeedsPassphrase(t *testing.T) {
	path, _ := writeEncrypted(t, 23, "pw")
	if _, err := Read(path); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("Read: err = %v, want ErrPassphraseRequired", err)
	}
	if _, err := ReadWithPassphrase(path, passphrase("")); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("empty passphrase: err = %v, want ErrPassphraseRequired", err)
	}
	boom := errors.New("no terminal")
	if _, err := ReadWithPassphrase(path, func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the passphrase source's error", err)
	}
}

func TestPlainKeyFileNeverAsksForPassphrase(t *testing.T) {
	key := cryptotest.Key(t, 24)
	path := filepath.Join(t.TempDir(), "replica.key")
	if err := Write(path, key); err != nil {
		t.Fatal(err)
	}
	got, err := ReadWithPassphrase(path, func() ([]byte, error) {
		t.Fatal("passphrase asked for a plain key file")
		return nil, nil
	})
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("ReadWithPassphrase on a plain file: %v", err)
	}
	if enc, err := IsEncrypted(path); err != nil || enc {
		t.Fatalf("IsEncrypted = %v, %v", enc, err)
	}
}

// rewrite decodes the encrypted file at path, lets edit change the block
// and writes it back.
func rewrite(t *testing.T, path string, edit func(b *pem.Block)) {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(content)
	edit(block)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEncryptedKeyFileTampered(t *testing.T) {
	tests := map[string]func(b *pem.Block){
		"ciphertext bit": func(b *pem.Block) { b.Bytes[3] ^= 1 },
		"tag bit":        func(b *pem.Block) { b.Bytes[len(b.Bytes)-1] ^= 0x80 },
		"salt":           func(b *pem.Block) { b.Headers["Kdf-Salt"] = strings.Repeat("00", 16) },
		"nonce":          func(b *pem.Block) { b.Headers["Aead-Nonce"] = strings.Repeat("11", 12) },
		"time":           func(b *pem.Block) { b.Headers["Kdf-Time"] = "2" },
		"memory":         func(b *pem.Block) { b.Headers["Kdf-Memory"] = "128" },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			path, _ := writeEncrypted(t, 25, "pw")
			rewrite(t, path, edit)
			if _, err := ReadWithPassphrase(path, passphrase("pw")); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("err = %v, want ErrWrongPassphrase", err)
			}
		})
	}
}

func TestEncryptedKeyFileRefusesBadHeaders(t *testing.T) {
	tests := map[string]func(b *pem.Block){
		"memory too large":   func(b *pem.Block) { b.Headers["Kdf-Memory"] = "4194304" }, // 4 GiB
		"memory overflow":    func(b *pem.Block) { b.Headers["Kdf-Memory"] = "99999999999" },
		"memory too small":   func(b *pem.Block) { b.Headers["Kdf-Memory"] = "4" },
		"time too large":     func(b *pem.Block) { b.Headers["Kdf-Time"] = "1000000" },
		"time zero":          func(b *pem.Block) { b.Headers["Kdf-Time"] = "0" },
		"threads zero":       func(b *pem.Block) { b.Headers["Kdf-Threads"] = "0" },
		"threads too many":   func(b *pem.Block) { b.Headers["Kdf-Threads"] = "255" },
		"threads not number": func(b *pem.Block) { b.Headers["Kdf-Threads"] = "x" },
		"other kdf":          func(b *pem.Block) { b.Headers["Kdf"] = "scrypt" },
		"other aead":         func(b *pem.Block) { b.Headers["Aead"] = "aes-gcm" },
		"missing salt":       func(b *pem.Block) { delete(b.Headers, "Kdf-Salt") },
		"short salt":         func(b *pem.Block) { b.Headers["Kdf-Salt"] = "0011" },
		"bad nonce":          func(b *pem.Block) { b.Headers["Aead-Nonce"] = "zz" },
		"extra header":       func(b *pem.Block) { b.Headers["Comment"] = "hi" },
		"short body":         func(b *pem.Block) { b.Bytes = b.Bytes[:40] },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			path, _ := writeEncrypted(t, 26, "pw")
			rewrite(t, path, edit)
			asked := false
			_, err := ReadWithPassphrase(path, func() ([]byte, error) { asked = true; return []byte("pw"), nil })
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, ErrWrongPassphrase) || asked {
				t.Fatalf("malformed headers reached decryption (asked=%v): %v", asked, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestEncryptedKeyFileRefusesLooseMode(t *testing.T) {
	path, _ := writeEncrypted(t, 27, "pw")
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWithPassphrase(path, passphrase("pw")); err == nil || !strings.Contains(err.Error(), "0640") {
		t.Fatalf("err = %v, want a mode error", err)
	}
}

func TestReadPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for content, want := range map[string]string{"s3cret\n": "s3cret", "s3cret\r\n": "s3cret", "s3cret": "s3cret", "two words \n\n": "two words \n"} {
		got, err := ReadPassphraseFile(write("p", content, 0o600))
		if err != nil || string(got) != want {
			t.Errorf("ReadPassphraseFile(%q) = %q, %v; want %q", content, got, err, want)
		}
		_ = os.Remove(filepath.Join(dir, "p"))
	}
	if _, err := ReadPassphraseFile(write("empty", "\n", 0o600)); err == nil {
		t.Error("empty passphrase file accepted")
	}
	if _, err := ReadPassphraseFile(write("loose", "pw\n", 0o644)); err == nil {
		t.Error("world-readable passphrase file accepted")
	}
}
