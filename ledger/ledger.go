package ledger

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// internalFailure is the result error of an operation executed outside a
// batch whose write failed (see execution.KV.Atomically); replicas drive
// the ledger through an Executor, which turns storage failures into
// errors instead.
const internalFailure = "internal storage error"

// Ledger is the ledger application over an execution.KV (see the package
// doc for its rules). It is an execution.RequestApplication (operations
// act for their sender), an execution.BatchApplication and an
// execution.TransferableApplication: batches, digest, read cache,
// snapshots and state transfer are the KV's, to which it forwards them.
// Like KV, it is not safe for concurrent use.
type Ledger struct {
	kv      *execution.KV
	issuers map[[AccountSize]byte]struct{}
}

// Interfaces the executor looks for; the compiler checks them here.
var (
	_ execution.RequestApplication      = (*Ledger)(nil)
	_ execution.BatchApplication        = (*Ledger)(nil)
	_ execution.TransferableApplication = (*Ledger)(nil)
)

// New returns the ledger stored in kv, whose mints only the holders of
// issuers may send. kv must hold nothing but ledger entries; every
// replica of a cluster must name the same issuers. issuers are copied.
func New(kv *execution.KV, issuers []ed25519.PublicKey) (*Ledger, error) {
	l := &Ledger{kv: kv, issuers: make(map[[AccountSize]byte]struct{}, len(issuers))}
	for i, key := range issuers {
		if len(key) != AccountSize {
			return nil, fmt.Errorf("ledger: issuer %d: key of %d bytes, want %d", i, len(key), AccountSize)
		}
		l.issuers[[AccountSize]byte(key)] = struct{}{}
	}
	return l, nil
}

// Open returns the execution.Opener of the ledger with these issuer keys
// (from the cluster configuration's ledger_issuers): it opens the KV in
// the replica's database and the ledger over it.
func Open(issuers []ed25519.PublicKey) execution.Opener {
	keys := make([]ed25519.PublicKey, len(issuers))
	copy(keys, issuers)
	return func(db *storage.DB, _ *slog.Logger) (execution.Application, error) {
		kv, err := execution.NewKV(db.LevelDB())
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		return New(kv, keys)
	}
}

// Execute refuses op: a ledger operation acts for its sender, which only
// ExecuteRequest knows.
func (l *Ledger) Execute(op []byte) []byte {
	return marshal(&wire.LedgerResult{Error: "ledger: operation without a sender"})
}

// ExecuteRequest applies the encoded wire.LedgerOperation op for the
// account whose key is the first 32 bytes of clientID and returns the
// encoded wire.LedgerResult. A refused or malformed operation changes
// nothing. Outside a batch the operation is committed on its own
// (unsynced) write, as KV.Execute does.
func (l *Ledger) ExecuteRequest(clientID, op []byte) []byte {
	result, err := l.kv.Atomically(func() []byte { return marshal(l.execute(clientID, op)) })
	if err != nil {
		return marshal(&wire.LedgerResult{Error: internalFailure})
	}
	return result
}

// Digest returns the KV's digest of the ledger's entries (histories
// included); during a batch it includes the batch's operations.
func (l *Ledger) Digest() [32]byte { return l.kv.Digest() }

// Snapshot returns the KV's snapshot of the ledger's entries.
func (l *Ledger) Snapshot() ([]byte, error) { return l.kv.Snapshot() }

// Restore replaces the state with snapshot (see execution.KV.Restore) and
// checks the ledger's invariants on the result; when they fail it puts the
// previous state back and returns an error, so a snapshot that is not a
// valid ledger changes nothing.
func (l *Ledger) Restore(snapshot []byte) error {
	previous, err := l.kv.Snapshot()
	if err != nil {
		return fmt.Errorf("ledger: restore: save current state: %w", err)
	}
	if err := l.kv.Restore(snapshot); err != nil {
		return errors.Join(fmt.Errorf("ledger: restore: %w", err), l.putBack(previous))
	}
	if err := l.Invariants(); err != nil {
		return errors.Join(fmt.Errorf("ledger: restore: snapshot is not a valid ledger: %w", err), l.putBack(previous))
	}
	return nil
}

func (l *Ledger) putBack(previous []byte) error {
	if err := l.kv.Restore(previous); err != nil {
		return fmt.Errorf("ledger: restore: put the previous state back: %w", err)
	}
	return nil
}

// Begin starts a batch (execution.BatchApplication).
func (l *Ledger) Begin() { l.kv.Begin() }

// Stage adds the batch's writes to b (execution.BatchApplication).
func (l *Ledger) Stage(b execution.Batch) error { return l.kv.Stage(b) }

// Commit makes the staged batch the committed state.
func (l *Ledger) Commit() { l.kv.Commit() }

// Rollback discards the open batch.
func (l *Ledger) Rollback() { l.kv.Rollback() }

// TransferKey reports whether key is part of the transferred state: the
// KV's entries (execution.TransferableApplication).
func (l *Ledger) TransferKey(key []byte) bool { return l.kv.TransferKey(key) }

// CheckTransferEntry validates an entry received in state transfer: it
// must be a KV entry (within the KV's limits) under a ledger key, with a
// value the ledger could have stored there (an 8-byte number, or a
// canonical history entry of that account and number).
func (l *Ledger) CheckTransferEntry(key, value []byte) error {
	if err := l.kv.CheckTransferEntry(key, value); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	kvKey, _ := execution.EntryKey(key)
	parsed, err := parseKey(kvKey)
	if err != nil {
		return fmt.Errorf("ledger: transfer key %x: %w", truncate(kvKey), err)
	}
	if _, err := checkEntry(parsed, value); err != nil {
		return fmt.Errorf("ledger: transfer entry %x: %w", truncate(kvKey), err)
	}
	return nil
}

// Reload reloads the KV after state transfer rewrote its entries.
func (l *Ledger) Reload() error { return l.kv.Reload() }

// DropCache forwards the executor's cache drop before state transfer to
// the KV (see execution.KV.DropCache).
func (l *Ledger) DropCache() { l.kv.DropCache() }

// truncate shortens hostile bytes for error messages.
func truncate(b []byte) []byte {
	const limit = 64
	if len(b) > limit {
		return b[:limit]
	}
	return b
}
