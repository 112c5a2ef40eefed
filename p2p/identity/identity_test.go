package identity

import (
	"bytes"
	"crypto/ed25519"
	"math/rand"
	"testing"

	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

func TestPeerIDPublicKeyRoundTrip(t *testing.T) {
	key := cryptotest.Key(t, 20)
	pub := key.Public().(ed25519.PublicKey)
	id, err := PeerIDFromPublicKey(pub)
	if err != nil {
		t.Fatalf("PeerIDFromPublicKey: %v", err)
	}
	back, err := PublicKeyFromPeerID(id)
	if err != nil {
		t.Fatalf("PublicKeyFromPeerID: %v", err)
	}
	if !bytes.Equal(back, pub) {
		t.Fatal("PublicKeyFromPeerID(PeerIDFromPublicKey(pub)) != pub")
	}
	// The ID survives its text form, as written in cluster files and logs.
	decoded, err := peer.Decode(id.String())
	if err != nil || decoded != id {
		t.Fatalf("peer.Decode(id.String()) = %v, %v", decoded, err)
	}
}

func TestLibP2PPrivateKeyIsSameIdentity(t *testing.T) {
	key := cryptotest.Key(t, 21)
	priv, err := LibP2PPrivateKey(key)
	if err != nil {
		t.Fatalf("LibP2PPrivateKey: %v", err)
	}
	fromPriv, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatalf("IDFromPrivateKey: %v", err)
	}
	fromPub, err := PeerIDFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("PeerIDFromPublicKey: %v", err)
	}
	if fromPriv != fromPub {
		t.Fatalf("libp2p key has peer ID %s, signing key has %s", fromPriv, fromPub)
	}
	// A libp2p signature by the converted key is an Ed25519 signature by
	// the signing key.
	msg := []byte("noise handshake payload")
	sig, err := priv.Sign(msg)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), msg, sig) {
		t.Fatal("libp2p key signs as a different key")
	}
}

func TestLibP2PPrivateKeyRefusesMalformedKey(t *testing.T) {
	if _, err := LibP2PPrivateKey(make(ed25519.PrivateKey, 32)); err == nil {
		t.Fatal("LibP2PPrivateKey accepted a 32-byte key")
	}
	mismatched := bytes.Clone(cryptotest.Key(t, 22))
	mismatched[40] ^= 1 // corrupt the public half
	if _, err := LibP2PPrivateKey(mismatched); err == nil {
		t.Fatal("LibP2PPrivateKey accepted a key whose public half does not match its seed")
	}
}

func TestPeerIDFromPublicKeyRefusesWrongLength(t *testing.T) {
	for _, n := range []int{0, 31, 33} {
		if _, err := PeerIDFromPublicKey(make(ed25519.PublicKey, n)); err == nil {
			t.Errorf("PeerIDFromPublicKey accepted a %d-byte key", n)
		}
	}
}

func TestPublicKeyFromPeerIDRefusesNonEd25519(t *testing.T) {
	_, secpPub, err := libp2pcrypto.GenerateSecp256k1Key(rand.New(rand.NewSource(23)))
	if err != nil {
		t.Fatalf("GenerateSecp256k1Key: %v", err)
	}
	secpID, err := peer.IDFromPublicKey(secpPub)
	if err != nil {
		t.Fatalf("IDFromPublicKey: %v", err)
	}
	if _, err := PublicKeyFromPeerID(secpID); err == nil {
		t.Fatal("PublicKeyFromPeerID accepted a secp256k1 peer ID")
	}

	for name, id := range map[string]peer.ID{
		"empty":            "",
		"garbage":          peer.ID("not a multihash"),
		"truncated":        secpID[:len(secpID)-3],
		"sha256 multihash": peer.ID(append([]byte{0x12, 0x20}, make([]byte, 32)...)),
	} {
		if _, err := PublicKeyFromPeerID(id); err == nil {
			t.Errorf("PublicKeyFromPeerID accepted the %s peer ID", name)
		}
	}
}

// TestPeerIDFromPublicKeyMatchesLibp2p: the peer ID built directly is the
// one libp2p derives, for random keys and for byte patterns that are not
// valid points (libp2p does not check the point either).
func TestPeerIDFromPublicKeyMatchesLibp2p(t *testing.T) {
	keys := []ed25519.PublicKey{make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)}
	for i := range 200 {
		keys = append(keys, cryptotest.Key(t, int64(500+i)).Public().(ed25519.PublicKey))
	}
	for i, pub := range keys {
		got, err := PeerIDFromPublicKey(pub)
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		want, err := libp2pPeerID(pub)
		if err != nil {
			t.Fatalf("key %d: libp2p: %v", i, err)
		}
		if got != want {
			t.Fatalf("key %d: peer ID %x, libp2p derives %x", i, []byte(got), []byte(want))
		}
		back, err := PublicKeyFromPeerID(got)
		if err != nil || !bytes.Equal(back, pub) {
			t.Fatalf("key %d: round trip gave %x, %v", i, back, err)
		}
	}
}

// Ed25519KeyOfPeerID reads back exactly the key PublicKeyFromPeerID
// decodes, and nothing from a peer ID of another kind or length.
func TestEd25519KeyOfPeerID(t *testing.T) {
	pub := cryptotest.Key(t, 21).Public().(ed25519.PublicKey)
	id, err := PeerIDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := Ed25519KeyOfPeerID(id); !bytes.Equal(got, pub) {
		t.Fatalf("Ed25519KeyOfPeerID = %x, want %x", got, pub)
	}
	_, secpPub, err := libp2pcrypto.GenerateSecp256k1Key(rand.New(rand.NewSource(24)))
	if err != nil {
		t.Fatal(err)
	}
	secpID, err := peer.IDFromPublicKey(secpPub)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]peer.ID{
		"empty": "", "secp256k1": secpID, "truncated": id[:len(id)-1], "longer": id + "x",
		"sha256 multihash": peer.ID(append([]byte{0x12, 0x20}, make([]byte, 36)...)),
	} {
		if got := Ed25519KeyOfPeerID(bad); got != nil {
			t.Errorf("%s: Ed25519KeyOfPeerID = %x, want nil", name, got)
		}
	}
}
