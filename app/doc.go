// Package app is the contract between pbftnode and an application it
// replicates: implement Application (in Go, in the replica's process) or
// serve the gRPC service of package appgrpc (in any language, in another
// process), and pbftnode orders client operations with PBFT or Raft and
// executes them on every replica's copy of the application.
//
// # Determinism
//
// Every correct replica executes the same batches, in the same order, on
// the same state. Execute must therefore compute its results and its new
// state from the operations and the previous state only: no clocks, no
// randomness, no map iteration order, no I/O whose outcome can differ
// between machines. Operations come from clients and are hostile: a
// malformed or refused operation gets a result saying so (the same on
// every replica), never a panic and never an error return.
//
// # Digest
//
// Execute returns a digest of the whole state after the batch: equal
// states have equal digests and different states different digests (a
// collision-resistant hash). Checkpoints certify it, state transfer checks
// a restored application against it, and replicas whose digests differ at
// the same sequence have diverged. Keep it incremental (see the key-value
// example's running sum of entry hashes); the replica asks for nothing but
// what Execute returns.
//
// # Durability
//
// The application need not persist anything. The replica keeps, in its own
// database and in the same atomic write as each batch's bookkeeping, a
// snapshot of the application (taken every few batches with Snapshot) and
// the operations it executed since. Whenever the application's State (Info)
// is not the one the replica recorded (the application restarted, lost
// data, or executed a batch the replica crashed before recording), the
// replica calls Restore with its snapshot and executes the recorded batches
// again, so the application ends at the replica's state: no operation is
// lost and none is applied twice on top of itself. An application that
// persists its state and reports it in Info is simply found in sync.
//
// # Snapshots and state transfer
//
// Snapshot writes the whole state as of Info's Sequence; Restore replaces
// the whole state with such a snapshot, taken on this or on any other
// correct replica. A replica that fell behind fetches another's snapshot
// and recorded batches, restores its own application from them and checks
// the resulting digest against the one a quorum certified, so the bytes a
// peer sent are never trusted, but Restore must reject a snapshot it
// cannot decode (with an error, leaving a state that the next Restore
// replaces) rather than panic.
//
// # Calls
//
// The replica calls one method at a time (never concurrently) and passes a
// context that ends when the replica shuts down. An error return means
// "could not do it now" (unreachable, out of resources): the replica waits,
// calls Info again, brings the application back in sync and retries, and is
// not ready (/readyz) meanwhile, saying why.
package app
