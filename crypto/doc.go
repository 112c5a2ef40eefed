// Package crypto owns pbftnode's cryptographic primitives: Ed25519 keys and
// key files, domain-separated signing and verification, the digests that
// identify client requests and batches, the mapping between signing keys and
// libp2p identities, a worker pool that verifies signatures in parallel
// (with batch verification) off the protocol core's goroutine, a bounded
// cache of client requests whose signatures were already checked, and the
// measurement of the crypto ceiling (MeasureCeiling).
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
