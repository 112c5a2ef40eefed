// Package pbft is the runtime of a PBFT replica. It wires the shell
// (node.Shell: libp2p transport, database, operations HTTP, lifetime),
// signature verification (protocol.MessageVerifier on a pool of workers),
// the executor (execution/) and the replica driver (replica.Driver, which
// owns the protocol core and the order of persist, send, execute,
// checkpoint, recovery and state transfer), and exports Prometheus
// metrics. Its own option is the fault-injection Filter (byzantine/
// implements it), given to Start.
//
// Concurrency: the transport's goroutines deliver frames; verification
// workers (node.ReceiveLoop) decode them and check signatures in batches,
// after a cheap admission pre-check against the last published
// watermarks (protocol.Watermarks, published with the status);
// one goroutine, the event loop (node.EventLoop), owns the driver (and
// through it the core and the executor): it feeds it ticks and verified
// inputs, and after each tick or burst of inputs calls Driver.Process,
// which handles the core's Ready in the order the replica package
// documents. The snapshot server, on its own goroutine, keeps the
// checkpoint snapshots the driver hands it, deletes the log below stable
// checkpoints and answers state requests within a per-replica budget.
// Metrics come from the driver's Observer hooks and its Status. No lock is
// shared between these components; they talk over bounded channels, and a
// full channel drops (and counts) rather than blocks.
package pbft
