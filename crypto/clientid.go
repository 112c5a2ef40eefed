package crypto

import (
	"crypto/ed25519"
	"fmt"
)

// MaxClientSessionSize bounds the session suffix of a client id.
const MaxClientSessionSize = 16

// ClientID returns the client id a client with public key pub and session
// uses: pub followed by session (at most MaxClientSessionSize bytes). A
// session gives every Client instance its own request numbers and reply
// window, so several processes may share one key.
func ClientID(pub ed25519.PublicKey, session []byte) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("crypto: client id: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if len(session) > MaxClientSessionSize {
		return nil, fmt.Errorf("crypto: client id: session is %d bytes, limit %d", len(session), MaxClientSessionSize)
	}
	id := make([]byte, 0, len(pub)+len(session))
	return append(append(id, pub...), session...), nil
}

// ClientKeySize is how many leading bytes of a client id name its key.
const ClientKeySize = ed25519.PublicKeySize

// ClientKeyOf returns the key part of a client id, for what is counted or
// bounded per key over all its sessions: its first ClientKeySize bytes,
// or the whole id when it is shorter (an id not checked yet). It aliases
// id.
func ClientKeyOf[ID ~string | ~[]byte](id ID) ID { return id[:min(len(id), ClientKeySize)] }

// ClientPublicKey returns the public key a client id names: its first
// ed25519.PublicKeySize bytes. The rest, at most MaxClientSessionSize
// bytes, is the client's session. The key aliases id.
func ClientPublicKey(id []byte) (ed25519.PublicKey, error) {
	if len(id) < ed25519.PublicKeySize || len(id) > ed25519.PublicKeySize+MaxClientSessionSize {
		return nil, fmt.Errorf("crypto: client id of %d bytes, want %d to %d", len(id),
			ed25519.PublicKeySize, ed25519.PublicKeySize+MaxClientSessionSize)
	}
	return ed25519.PublicKey(id[:ed25519.PublicKeySize:ed25519.PublicKeySize]), nil
}
