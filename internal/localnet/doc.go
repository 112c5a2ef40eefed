// Package localnet starts a cluster of in-process replicas (PBFT, Raft or
// the benchmark floor) on 127.0.0.1 over real libp2p, with temporary data
// directories, and makes clients for it. The demo command and the
// end-to-end tests use it.
package localnet
