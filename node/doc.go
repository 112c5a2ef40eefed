// Package node is the runtime of a PBFT replica. It wires the libp2p
// transport (p2p/), signature verification (protocol.MessageVerifier on a
// pool of workers), the protocol core (protocol.Replica), storage
// (storage/) and the executor (execution/), and exports Prometheus
// metrics.
//
// Concurrency: the transport's goroutines deliver frames; verification
// workers decode them and check signatures in parallel; one goroutine, the
// event loop, owns the protocol core and the executor. It takes inputs one
// at a time, and after a burst of inputs handles the core's Ready: it
// persists the log entries (synced unless Sync is off) BEFORE sending any
// message, then sends, then executes committed batches and replies to
// clients. No lock is shared between these components; they talk over
// bounded channels.
package node
