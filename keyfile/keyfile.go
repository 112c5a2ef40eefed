package keyfile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// keyFilePEMType is the PEM block type of a pbftnode private key file. The
// block holds the 32-byte Ed25519 seed.
const keyFilePEMType = "PBFTNODE ED25519 PRIVATE KEY"

// keyFileMode is the mode key files are created with.
const keyFileMode os.FileMode = 0o600

// maxKeyFileSize bounds how much of a key file Read reads. A valid
// file is about 120 bytes.
const maxKeyFileSize = 4096

// Write writes key to a new file at path as a PEM block of type
// "PBFTNODE ED25519 PRIVATE KEY" holding the 32-byte seed. The file is
// created with mode 0600 (never widened afterwards) and synced. Write
// refuses to overwrite an existing file, so a key cannot be lost by
// accident; on any error after creation it removes the partial file.
func Write(path string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("keyfile: write key file %s: private key is %d bytes, want %d", path, len(key), ed25519.PrivateKeySize)
	}
	encoded := pem.EncodeToMemory(&pem.Block{Type: keyFilePEMType, Bytes: key.Seed()})
	return writeNewKeyFile(path, encoded)
}

// writeNewKeyFile creates path (mode 0600, never an existing file), writes
// content and syncs it; on any error after creation it removes the file.
func writeNewKeyFile(path string, encoded []byte) (err error) {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode)
	if err != nil {
		return fmt.Errorf("keyfile: write key file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if _, err := file.Write(encoded); err != nil {
		_ = file.Close()
		return fmt.Errorf("keyfile: write key file %s: %w", path, err)
	}
	if err := file.Sync(); err != nil {
		_ = file.Close()
		return fmt.Errorf("keyfile: sync key file %s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("keyfile: close key file %s: %w", path, err)
	}
	return nil
}

// Read reads a private key written by Write. It refuses a file
// that group or others may read or write (any of the mode bits 0077 set),
// naming the file and its mode, and refuses content that is not exactly one
// PEM block of type "PBFTNODE ED25519 PRIVATE KEY", without headers, holding
// a 32-byte seed (surrounding whitespace is allowed). An encrypted key file
// (WriteEncrypted) is refused with ErrPassphraseRequired; read it
// with ReadWithPassphrase.
func Read(path string) (ed25519.PrivateKey, error) {
	return ReadWithPassphrase(path, nil)
}

// ReadWithPassphrase reads a key file in either format: a plain one
// as Read does, or an encrypted one written by WriteEncrypted,
// calling passphrase (only then) for the passphrase. A nil passphrase
// function refuses encrypted files with ErrPassphraseRequired. A wrong
// passphrase, or a file altered in any way, fails with ErrWrongPassphrase.
// The same mode and size checks apply to both formats.
func ReadWithPassphrase(path string, passphrase func() ([]byte, error)) (ed25519.PrivateKey, error) {
	content, err := readPrivateFile(path, "key file", maxKeyFileSize)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyFile(content, passphrase)
	if err != nil {
		return nil, fmt.Errorf("keyfile: key file %s: %w", path, err)
	}
	return key, nil
}

// readPrivateFile reads a small secret file: a regular file of at most
// limit bytes that neither group nor others may access.
func readPrivateFile(path, what string, limit int64) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyfile: read %s: %w", what, err)
	}
	defer func() { _ = file.Close() }()

	// Stat the opened file, not the path, so the mode checked is the mode
	// of the file that is read.
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyfile: stat %s %s: %w", what, path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("keyfile: %s %s is not a regular file (mode %v)", what, path, info.Mode())
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keyfile: %s %s has mode %#o: it must not be accessible by group or others (chmod 600 %s)", what, path, perm, path)
	}

	content, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, fmt.Errorf("keyfile: read %s %s: %w", what, path, err)
	}
	if int64(len(content)) > limit {
		return nil, fmt.Errorf("keyfile: %s %s is larger than %d bytes", what, path, limit)
	}
	return content, nil
}

// parseKeyFile decodes the content of a key file of either format.
func parseKeyFile(content []byte, passphrase func() ([]byte, error)) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(content)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	switch block.Type {
	case keyFilePEMType:
		if len(block.Headers) != 0 {
			return nil, errors.New("PEM block has headers, want none")
		}
		if len(block.Bytes) != ed25519.SeedSize {
			return nil, fmt.Errorf("seed is %d bytes, want %d", len(block.Bytes), ed25519.SeedSize)
		}
		return ed25519.NewKeyFromSeed(block.Bytes), nil
	case encryptedKeyFilePEMType:
		return decryptKeyBlock(block, passphrase)
	}
	return nil, fmt.Errorf("PEM block type is %q, want %q or %q", block.Type, keyFilePEMType, encryptedKeyFilePEMType)
}

// EncodePublicKey returns pub as lowercase hex, the form public keys take in
// configuration files.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return hex.EncodeToString(pub)
}

// DecodePublicKey parses a hex public key as written by EncodePublicKey. It
// fails on invalid hex or a length other than 32 bytes.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	raw, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("keyfile: decode public key: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("keyfile: decode public key: %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
