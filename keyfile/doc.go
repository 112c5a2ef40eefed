// Package keyfile owns the on-disk and textual forms of pbftnode's Ed25519
// keys: private key files (Write, Read), passphrase-encrypted key files
// (WriteEncrypted, ReadWithPassphrase; Argon2id and ChaCha20-Poly1305, with
// authenticated headers and a bounded KDF cost), passphrase files
// (ReadPassphraseFile), and the hex form public keys take in configuration
// files (EncodePublicKey, DecodePublicKey).
//
// Contracts: a key file is created with mode 0600 and synced, and never
// overwrites an existing file; a private key or passphrase file that group
// or others can access is refused, as is one larger than a small bound; a
// wrong passphrase and a tampered encrypted file both fail with
// ErrWrongPassphrase; an encrypted file read without a passphrase source
// fails with ErrPassphraseRequired. Key generation itself is a primitive
// (crypto.GenerateKey). The package keeps no state and does not log.
package keyfile
