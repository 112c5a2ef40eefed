// Package identity maps pbftnode's Ed25519 signing keys to libp2p
// identities: a replica's (or client's) libp2p identity is its signing key.
// LibP2PPrivateKey converts a signing key into the libp2p private key of the
// same identity, PeerIDFromPublicKey and ClientPeerID give the peer ID of a
// public key or client id, and PublicKeyFromPeerID recovers the key a peer
// ID inlines.
//
// It lives apart from package crypto so that the primitives (and the
// protocol core that uses them) do not depend on libp2p; its users are the
// transport's users: the runtimes, the client, the CLI and the benchmarks.
// It keeps no state and does not log.
package identity
