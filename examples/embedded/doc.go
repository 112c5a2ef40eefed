// Command embedded runs a replicated application of its own in one
// process: four PBFT replicas (or, with --protocol raft, three Raft
// replicas) of the counters application (counters.go: named 64-bit
// counters with their own operation encoding and an incremental digest,
// held in memory), started with pbftnode.StartReplica on free loopback
// ports in a temporary directory. Several clients, each sending two
// operations at once, add to their own counters and to a shared one
// through the client library; halfway, the last replica is closed and
// started again with a fresh, empty application (--restart=false skips
// it), which the replica brings back to its state. It then checks that the
// clients' results are consistent, that every replica executed the same
// sequence with the same state digest, and that every replica's
// application holds the same counters at that sequence, prints what it
// checked and exits 0; any disagreement exits 1 with a message saying what
// differed.
//
//	go run ./examples/embedded
//	go run ./examples/embedded --protocol raft
package main
