// Package node is the runtime of a PBFT replica (and, in raft*.go and
// floor.go, of the Raft mode and the benchmark floor). For PBFT it wires
// the libp2p transport (p2p/), signature verification
// (protocol.MessageVerifier on a pool of workers), storage (storage/), the
// executor (execution/) and the replica driver (replica.Driver, which owns
// the protocol core and the order of persist, send, execute, checkpoint,
// recovery and state transfer), and exports Prometheus metrics.
//
// Concurrency: the transport's goroutines deliver frames; verification
// workers decode them and check signatures in parallel; one goroutine, the
// event loop, owns the driver (and through it the core and the executor):
// it feeds it ticks and verified inputs, and after each tick or burst of
// inputs calls Driver.Process, which handles the core's Ready in the order
// the replica package documents. The snapshot server, on its own
// goroutine, keeps the checkpoint snapshots the driver hands it and
// answers state requests. Metrics come from the driver's Observer hooks
// and its Status. No lock is shared between these components; they talk
// over bounded channels.
package node
