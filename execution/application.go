package execution

import (
	"log/slog"

	"github.com/pbftnode/pbftnode/storage"
)

// Application is a deterministic state machine. Execute must give identical
// results on every correct replica for the same sequence of operations,
// whatever the operation bytes are (they come from clients and are
// hostile): malformed operations yield an error result, never a panic.
type Application interface {
	// Execute applies one operation and returns its result.
	Execute(op []byte) (result []byte)
	// Snapshot returns an encoding of the whole application state.
	Snapshot() ([]byte, error)
	// Restore replaces the whole state with a snapshot produced by
	// Snapshot on any replica. It must reject malformed snapshots with an
	// error and leave the state unchanged in that case.
	Restore(snapshot []byte) error
	// Digest summarises the whole state; equal states have equal digests
	// and distinct states distinct digests (up to hash collisions). It
	// must be cheap: checkpoints call it often.
	Digest() [32]byte
}

// Batch collects the writes of one executed batch, which the executor then
// commits to its database in one atomic write. Put and Delete copy their
// arguments, so the caller may reuse its buffers at once. Writes apply in
// the order they were added; a later write to a key replaces an earlier
// one. The application's keys must start with storage.PrefixApp.
type Batch interface {
	// Put sets key to value.
	Put(key, value []byte)
	// Delete removes key.
	Delete(key []byte)
}

// BatchApplication is an Application whose writes can join the executor's
// atomic batch. The executor drives it as:
//
//	Begin()
//	Execute(op) ... (reads see the earlier writes of the same batch)
//	Stage(b)        // error: the executor calls Rollback and fails
//	write b to the database
//	Commit()        // or Rollback() if the write failed
//
// Between Begin and Commit/Rollback the application must not write to the
// database itself; its changes live in memory until Stage adds them to b.
// Digest, called during a batch, covers the executed operations of the
// batch. Snapshot and Restore are not allowed during a batch.
type BatchApplication interface {
	Application
	// Begin starts buffering the writes of a new batch.
	Begin()
	// Stage adds the buffered writes (and any metadata, such as a digest
	// accumulator) to b. It returns an error when the batch cannot be
	// committed, for example because a read failed during Execute.
	Stage(b Batch) error
	// Commit tells the application that b was written: the buffered
	// changes are now its durable state.
	Commit()
	// Rollback discards the buffered changes of the batch.
	Rollback()
}

// TransferableApplication is an Application whose whole state lives in the
// replica's database under storage.PrefixApp, so checkpoint state transfer
// can copy it entry by entry (see StateSnapshot and Executor.RestoreBegin).
// KV implements it.
type TransferableApplication interface {
	Application
	// TransferKey reports whether a stored key (a full key, starting with
	// storage.PrefixApp) is part of the transferred state. Derived values,
	// such as a digest accumulator, are not: the receiver recomputes them.
	// It must depend on key only: snapshots call it from other goroutines.
	TransferKey(key []byte) bool
	// CheckTransferEntry validates an entry received from a possibly
	// faulty peer (key is a full key starting with storage.PrefixApp). It
	// must reject every key TransferKey would not send and every value the
	// application could not have stored, and depend on its arguments only.
	CheckTransferEntry(key, value []byte) error
	// Reload reloads the in-memory state from the database after state
	// transfer rewrote the application's keys directly, recomputing every
	// derived value (it must not trust a stored one). Never called during a
	// batch.
	Reload() error
}

// RequestApplication is an Application that needs to know who sent each
// operation: the executor calls ExecuteRequest instead of Execute. The
// client ID is authenticated by the replica (its first 32 bytes are the
// client's Ed25519 public key, the rest a session), so an application may
// use it as the account an operation acts for.
type RequestApplication interface {
	Application
	// ExecuteRequest applies op, sent by clientID, and returns its
	// result; the rules of Execute apply.
	ExecuteRequest(clientID, op []byte) (result []byte)
}

// BatchRunner is an Application that executes the new requests of a
// committed batch in one call (an application in another process, where a
// call per request would cost a round trip each). The executor picks the
// requests to execute exactly as it would call Execute for them (duplicates
// get their cached reply and are not passed) and calls ExecuteBatch once
// per batch, also for a batch with no new request, in sequence order. Inside
// a BatchApplication's Begin and Stage when the runner is also one.
//
// An error means the batch could not be executed at all (the application
// is gone for good, or the replica is shutting down): Apply fails and
// changes nothing. A failed operation is a result, never an error.
type BatchRunner interface {
	Application
	// ExecuteBatch executes requests, the new requests of the batch at
	// sequence, in order, and returns one result per request.
	ExecuteBatch(sequence uint64, requests []Request) (results [][]byte, err error)
}

// HealthReporter is an optional interface of an Application whose
// availability can change (one in another process): Health returns nil
// while the application can execute and an error saying why not otherwise.
// It is called from other goroutines (readiness checks) and must be safe
// for that.
type HealthReporter interface {
	Health() error
}

// Opener opens an application on a replica's database (at start, before
// the Executor is made over it); logger is the replica's. An application
// that keeps its state elsewhere may ignore db.
type Opener func(db *storage.DB, logger *slog.Logger) (Application, error)

// OpenKV is the Opener of the built-in key-value store.
func OpenKV(db *storage.DB, _ *slog.Logger) (Application, error) {
	return NewKV(db.LevelDB())
}

// Counter is one count an application reports (see CounterReporter).
type Counter struct {
	// Name is a metric name suffix: the replica exports it as
	// pbftnode_application_<Name>_total.
	Name, Help string
	Value      uint64
}

// CounterReporter is an optional interface of an Application that counts
// what it did (apphost: resyncs, restores, retries, ...). Counters returns
// the same names in the same order on every call; it is called from other
// goroutines (metrics scrapes) and must be safe for that.
type CounterReporter interface {
	Counters() []Counter
}
