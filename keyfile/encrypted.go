package keyfile

import (
	"bytes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// An encrypted key file is one PEM block of type
// "PBFTNODE ENCRYPTED ED25519 PRIVATE KEY" whose body is the 32-byte seed
// sealed with ChaCha20-Poly1305 (48 bytes with the tag), under a key
// derived from the passphrase with Argon2id. The headers carry everything
// needed to derive the key again:
//
//	Kdf: argon2id
//	Kdf-Time: 3            (passes)
//	Kdf-Memory: 65536      (KiB)
//	Kdf-Threads: 4
//	Kdf-Salt: 32 hex digits (16 random bytes)
//	Aead: chacha20poly1305
//	Aead-Nonce: 24 hex digits (12 random bytes)
//
// The headers are authenticated (they are the AEAD's additional data), so
// changing any of them makes decryption fail like a wrong passphrase. The
// KDF cost read from a file is bounded (MaxKDFParams) before any memory is
// allocated for it.

const encryptedKeyFilePEMType = "PBFTNODE ENCRYPTED ED25519 PRIVATE KEY"

// PEM header names of an encrypted key file.
const (
	hdrKDF       = "Kdf"
	hdrKDFTime   = "Kdf-Time"
	hdrKDFMemory = "Kdf-Memory"
	hdrThreads   = "Kdf-Threads"
	hdrSalt      = "Kdf-Salt"
	hdrAEAD      = "Aead"
	hdrNonce     = "Aead-Nonce"

	kdfArgon2id       = "argon2id"
	aeadChaCha20Poly  = "chacha20poly1305"
	kdfSaltSize       = 16
	maxPassphraseSize = 4096
)

// ErrWrongPassphrase is returned when an encrypted key file does not
// decrypt: the passphrase is wrong, or the file was altered.
var ErrWrongPassphrase = errors.New("wrong passphrase or corrupted key file")

// ErrPassphraseRequired is returned when an encrypted key file is read
// without a way to obtain its passphrase.
var ErrPassphraseRequired = errors.New("key file is encrypted: a passphrase is required")

// KDFParams are the Argon2id cost parameters of an encrypted key file.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultKDFParams are the parameters WriteEncrypted uses: RFC 9106's
// second recommended option (3 passes, 64 MiB, 4 lanes).
var DefaultKDFParams = KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// MaxKDFParams bound what a key file may ask for: reading a file never
// costs more than 256 MiB of memory and 10 passes, whatever it says.
var MaxKDFParams = KDFParams{Time: 10, MemoryKiB: 256 * 1024, Threads: 16}

// check reports whether p is within the bounds readers accept.
func (p KDFParams) check() error {
	switch {
	case p.Time < 1 || p.Time > MaxKDFParams.Time:
		return fmt.Errorf("kdf time %d outside 1..%d", p.Time, MaxKDFParams.Time)
	case p.Threads < 1 || p.Threads > MaxKDFParams.Threads:
		return fmt.Errorf("kdf threads %d outside 1..%d", p.Threads, MaxKDFParams.Threads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxKDFParams.MemoryKiB:
		return fmt.Errorf("kdf memory %d KiB outside %d..%d", p.MemoryKiB, 8*uint32(p.Threads), MaxKDFParams.MemoryKiB)
	}
	return nil
}

// WriteEncrypted writes key to a new file at path, encrypted under
// passphrase with DefaultKDFParams. Like Write, the file is created
// 0600 and synced, and an existing file is never overwritten. An empty
// passphrase is refused.
func WriteEncrypted(path string, key ed25519.PrivateKey, passphrase []byte) error {
	return WriteEncryptedParams(path, key, passphrase, DefaultKDFParams)
}

// WriteEncryptedParams is WriteEncrypted with explicit KDF
// parameters, which must be within MaxKDFParams.
func WriteEncryptedParams(path string, key ed25519.PrivateKey, passphrase []byte, params KDFParams) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("keyfile: write key file %s: private key is %d bytes, want %d", path, len(key), ed25519.PrivateKeySize)
	}
	if len(passphrase) == 0 {
		return fmt.Errorf("keyfile: write key file %s: empty passphrase", path)
	}
	if len(passphrase) > maxPassphraseSize {
		return fmt.Errorf("keyfile: write key file %s: passphrase longer than %d bytes", path, maxPassphraseSize)
	}
	if err := params.check(); err != nil {
		return fmt.Errorf("keyfile: write key file %s: %w", path, err)
	}
	salt := make([]byte, kdfSaltSize)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("keyfile: write key file %s: %w", path, err)
	}
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("keyfile: write key file %s: %w", path, err)
	}
	aead, err := deriveAEAD(passphrase, salt, params)
	if err != nil {
		return fmt.Errorf("keyfile: write key file %s: %w", path, err)
	}
	sealed := aead.Seal(nil, nonce, key.Seed(), additionalData(params, salt, nonce))
	block := &pem.Block{
		Type: encryptedKeyFilePEMType,
		Headers: map[string]string{
			hdrKDF:       kdfArgon2id,
			hdrKDFTime:   strconv.FormatUint(uint64(params.Time), 10),
			hdrKDFMemory: strconv.FormatUint(uint64(params.MemoryKiB), 10),
			hdrThreads:   strconv.FormatUint(uint64(params.Threads), 10),
			hdrSalt:      hex.EncodeToString(salt),
			hdrAEAD:      aeadChaCha20Poly,
			hdrNonce:     hex.EncodeToString(nonce),
		},
		Bytes: sealed,
	}
	return writeNewKeyFile(path, pem.EncodeToMemory(block))
}

// IsEncrypted reports whether the file at path looks like an
// encrypted key file. It applies Read's mode and size checks and
// does not decrypt anything.
func IsEncrypted(path string) (bool, error) {
	content, err := readPrivateFile(path, "key file", maxKeyFileSize)
	if err != nil {
		return false, err
	}
	block, _ := pem.Decode(content)
	return block != nil && block.Type == encryptedKeyFilePEMType, nil
}

// ReadPassphraseFile reads a passphrase from a file that neither group nor
// others may access, dropping one trailing newline ("\n" or "\r\n"). An
// empty passphrase is refused.
func ReadPassphraseFile(path string) ([]byte, error) {
	content, err := readPrivateFile(path, "passphrase file", maxPassphraseSize)
	if err != nil {
		return nil, err
	}
	content = bytes.TrimSuffix(content, []byte("\n"))
	content = bytes.TrimSuffix(content, []byte("\r"))
	if len(content) == 0 {
		return nil, fmt.Errorf("keyfile: passphrase file %s is empty", path)
	}
	return content, nil
}

// decryptKeyBlock opens the body of an encrypted key block.
func decryptKeyBlock(block *pem.Block, passphrase func() ([]byte, error)) (ed25519.PrivateKey, error) {
	params, salt, nonce, err := parseEncryptedHeaders(block.Headers)
	if err != nil {
		return nil, err
	}
	if len(block.Bytes) != ed25519.SeedSize+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("encrypted seed is %d bytes, want %d", len(block.Bytes), ed25519.SeedSize+chacha20poly1305.Overhead)
	}
	if passphrase == nil {
		return nil, ErrPassphraseRequired
	}
	pass, err := passphrase()
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	if len(pass) == 0 {
		return nil, ErrPassphraseRequired
	}
	if len(pass) > maxPassphraseSize {
		return nil, fmt.Errorf("passphrase longer than %d bytes", maxPassphraseSize)
	}
	aead, err := deriveAEAD(pass, salt, params)
	if err != nil {
		return nil, err
	}
	seed, err := aead.Open(nil, nonce, block.Bytes, additionalData(params, salt, nonce))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

// parseEncryptedHeaders validates the headers of an encrypted key block,
// including the KDF cost bounds, before anything is derived.
func parseEncryptedHeaders(h map[string]string) (KDFParams, []byte, []byte, error) {
	known := []string{hdrKDF, hdrKDFTime, hdrKDFMemory, hdrThreads, hdrSalt, hdrAEAD, hdrNonce}
	for _, name := range known {
		if _, ok := h[name]; !ok {
			return KDFParams{}, nil, nil, fmt.Errorf("encrypted key: missing header %s", name)
		}
	}
	if len(h) != len(known) {
		return KDFParams{}, nil, nil, fmt.Errorf("encrypted key: %d headers, want exactly %v", len(h), known)
	}
	if h[hdrKDF] != kdfArgon2id {
		return KDFParams{}, nil, nil, fmt.Errorf("encrypted key: kdf %q, want %q", h[hdrKDF], kdfArgon2id)
	}
	if h[hdrAEAD] != aeadChaCha20Poly {
		return KDFParams{}, nil, nil, fmt.Errorf("encrypted key: aead %q, want %q", h[hdrAEAD], aeadChaCha20Poly)
	}
	num := func(name string, bits int) (uint64, error) {
		v, err := strconv.ParseUint(h[name], 10, bits)
		if err != nil {
			return 0, fmt.Errorf("encrypted key: header %s: %w", name, err)
		}
		return v, nil
	}
	t, err := num(hdrKDFTime, 32)
	if err != nil {
		return KDFParams{}, nil, nil, err
	}
	m, err := num(hdrKDFMemory, 32)
	if err != nil {
		return KDFParams{}, nil, nil, err
	}
	p, err := num(hdrThreads, 8)
	if err != nil {
		return KDFParams{}, nil, nil, err
	}
	params := KDFParams{Time: uint32(t), MemoryKiB: uint32(m), Threads: uint8(p)}
	if err := params.check(); err != nil {
		return KDFParams{}, nil, nil, fmt.Errorf("encrypted key: %w", err)
	}
	salt, err := hex.DecodeString(h[hdrSalt])
	if err != nil || len(salt) != kdfSaltSize {
		return KDFParams{}, nil, nil, fmt.Errorf("encrypted key: header %s is not %d bytes of hex", hdrSalt, kdfSaltSize)
	}
	nonce, err := hex.DecodeString(h[hdrNonce])
	if err != nil || len(nonce) != chacha20poly1305.NonceSize {
		return KDFParams{}, nil, nil, fmt.Errorf("encrypted key: header %s is not %d bytes of hex", hdrNonce, chacha20poly1305.NonceSize)
	}
	return params, salt, nonce, nil
}

// deriveAEAD derives the file key from the passphrase.
func deriveAEAD(passphrase, salt []byte, p KDFParams) (cipher.AEAD, error) {
	key := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	return aead, nil
}

// additionalData binds the block type and every header to the ciphertext.
func additionalData(p KDFParams, salt, nonce []byte) []byte {
	return fmt.Appendf(nil, "%s\n%s t=%d m=%d p=%d salt=%x\n%s nonce=%x",
		encryptedKeyFilePEMType, kdfArgon2id, p.Time, p.MemoryKiB, p.Threads, salt, aeadChaCha20Poly, nonce)
}
