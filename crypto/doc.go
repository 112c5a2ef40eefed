// Package crypto owns pbftnode's cryptographic primitives: Ed25519 keys and
// key files, domain-separated signing and verification, the digests that
// identify client requests and batches, the mapping between signing keys and
// libp2p identities, a worker pool that verifies signatures in parallel off
// the protocol core's goroutine, and a bounded cache of client requests whose
// signatures were already checked.
//
// Every signature in pbftnode is made over SignedBytes(domain, clusterID,
// payload). The domain names the purpose of the signature (a replica
// message, a client request, ...) and the cluster ID names the deployment,
// so a signature made for one purpose or one cluster never verifies for
// another.
//
// Nothing in this package logs, keeps global state or reads a global random
// source; randomness is always passed in as an io.Reader.
package crypto
