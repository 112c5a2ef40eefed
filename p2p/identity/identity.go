package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pbftnode/pbftnode/crypto"
)

// A replica's (or client's) libp2p identity is its signing key: its peer ID
// is derived from its Ed25519 public key, and the Noise handshake proves
// possession of the matching private key. Ed25519 public keys are small
// enough that libp2p inlines them in the peer ID, so the public key can be
// recovered from a peer ID without a lookup.

// LibP2PPrivateKey converts an Ed25519 signing key into the libp2p private
// key of the same identity. It fails if key has the wrong length or its
// public half does not match its seed.
func LibP2PPrivateKey(key ed25519.PrivateKey) (libp2pcrypto.PrivKey, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity: libp2p private key: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	canonical := ed25519.NewKeyFromSeed(key.Seed())
	if !bytes.Equal(canonical, key) {
		return nil, errors.New("identity: libp2p private key: public half of the private key does not match its seed")
	}
	priv, err := libp2pcrypto.UnmarshalEd25519PrivateKey(canonical)
	if err != nil {
		return nil, fmt.Errorf("identity: libp2p private key: %w", err)
	}
	return priv, nil
}

// ed25519PeerIDPrefix starts the libp2p peer ID of every Ed25519 key: the
// identity multihash (code 0x00, length 36) of the key's protobuf encoding
// (field 1, KeyType Ed25519 = 1; field 2, 32 bytes), which is followed by
// the 32 key bytes. libp2p inlines keys this short in the peer ID.
const ed25519PeerIDPrefix = "\x00\x24\x08\x01\x12\x20"

// PeerIDFromPublicKey returns the libp2p peer ID of the Ed25519 public key
// pub: exactly what libp2p's peer.IDFromPublicKey returns for it, built
// without decoding and re-encoding the key (replicas compute it for every
// client request and every reply). It fails if pub is not 32 bytes.
func PeerIDFromPublicKey(pub ed25519.PublicKey) (peer.ID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("identity: peer ID: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return peer.ID(ed25519PeerIDPrefix + string(pub)), nil
}

// Ed25519KeyOfPeerID returns the Ed25519 public key that the peer ID id
// inlines, read straight from its bytes (the inverse of
// PeerIDFromPublicKey), or nil when id is not the peer ID of an Ed25519
// key. The transport reads it once per stream (p2p.Frame.FromKey).
func Ed25519KeyOfPeerID(id peer.ID) []byte {
	if len(id) != len(ed25519PeerIDPrefix)+ed25519.PublicKeySize || !strings.HasPrefix(string(id), ed25519PeerIDPrefix) {
		return nil
	}
	return []byte(id[len(ed25519PeerIDPrefix):])
}

// libp2pPeerID is PeerIDFromPublicKey the long way, through libp2p (for
// the tests that hold the two equal).
func libp2pPeerID(pub ed25519.PublicKey) (peer.ID, error) {
	owned := make([]byte, ed25519.PublicKeySize)
	copy(owned, pub)
	libp2pPub, err := libp2pcrypto.UnmarshalEd25519PublicKey(owned)
	if err != nil {
		return "", fmt.Errorf("identity: peer ID: %w", err)
	}
	id, err := peer.IDFromPublicKey(libp2pPub)
	if err != nil {
		return "", fmt.Errorf("identity: peer ID: %w", err)
	}
	return id, nil
}

// PublicKeyFromPeerID recovers the Ed25519 public key embedded in a libp2p
// peer ID. It fails for IDs that are malformed, that do not embed their
// public key, or whose key is not Ed25519.
func PublicKeyFromPeerID(id peer.ID) (ed25519.PublicKey, error) {
	libp2pPub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("identity: public key from peer ID %q: %w", id, err)
	}
	if libp2pPub.Type() != pb.KeyType_Ed25519 {
		return nil, fmt.Errorf("identity: public key from peer ID %s: key type is %v, want Ed25519", id, libp2pPub.Type())
	}
	raw, err := libp2pPub.Raw()
	if err != nil {
		return nil, fmt.Errorf("identity: public key from peer ID %s: %w", id, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("identity: public key from peer ID %s: key is %d bytes, want %d", id, len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// ClientPeerID returns the libp2p peer ID of the client a client id names
// (the peer ID of its public key).
func ClientPeerID(id []byte) (peer.ID, error) {
	pub, err := crypto.ClientPublicKey(id)
	if err != nil {
		return "", err
	}
	return PeerIDFromPublicKey(pub)
}
