// Package crypto owns pbftnode's cryptographic primitives: Ed25519 key
// generation, domain-separated signing and verification (single and
// batch, with a cache of expanded public keys: Verifier), the digests
// that identify client requests and batches, client ids (a public key
// and a session), a bounded cache of client requests whose signatures
// were already checked (VerifiedCache), the Merkle tree that receipts and
// request bundles share (MerkleTree), and request bundles: one client
// signature over many requests, each request carrying its proof
// (SignRequests, CheckOfRequest; bundle.go has the format). It is what
// the protocol core needs and nothing more: it imports no networking or
// storage library.
//
// What was built on the primitives lives where it is used: key files in
// package keyfile, the verification workers in package verifypool, the
// libp2p identity of a key in package p2p/identity, and the measurement
// of the crypto ceiling in package benchmarks/cryptoceiling. Package
// crypto/cryptotest gives tests deterministic keys and signature jobs.
//
// Every signature in pbftnode is made over SignedBytes(domain, clusterID,
// payload). The domain names the purpose of the signature (a replica
// message, a client request, ...) and the cluster ID names the deployment,
// so a signature made for one purpose or one cluster never verifies for
// another.
//
// Every signature is verified under one set of rules (ZIP-215's, with
// small-order public keys refused; see verifyOptions), by single and batch
// verification alike, so verdicts never depend on batching.
//
// Nothing in this package logs or keeps mutable global state. Key
// generation takes its randomness as an io.Reader. The one exception is
// batch verification, whose random coefficients come from crypto/rand:
// they must be unpredictable to whoever made the signatures, and they never
// change a verdict.
package crypto
