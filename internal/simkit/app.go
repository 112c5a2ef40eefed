package simkit

import (
	"crypto/ed25519"
	"fmt"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/kvmodel"
	"github.com/pbftnode/pbftnode/internal/ledgermodel"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/storage"
)

// Application is the application a simulation runs on its replicas and
// its clients work on: the built-in key-value store (kvmodel), or, with
// Ledger, the built-in ledger (ledgermodel) whose only issuer is Issuer,
// the key of client ledgermodel.IssuerClient.
type Application struct {
	Ledger bool
	Issuer ed25519.PublicKey
}

// Open opens the application on a replica's database; l is the ledger
// (for the invariant checks), nil for the key-value store.
func (a Application) Open(db *storage.DB) (app execution.Application, l *ledger.Ledger, err error) {
	kv, err := execution.NewKV(db.LevelDB())
	if err != nil {
		return nil, nil, err
	}
	if !a.Ledger {
		return kv, nil, nil
	}
	if l, err = ledger.New(kv, []ed25519.PublicKey{a.Issuer}); err != nil {
		return nil, nil, err
	}
	return l, l, nil
}

// Source returns a client's operation source; accounts are the clients'
// accounts (their client IDs) by index, used by the ledger.
func (a Application) Source(accounts [][]byte) Source {
	if a.Ledger {
		return ledgermodel.NewSource(accounts)
	}
	return kvmodel.NewSource()
}

// Model is the sequential specification the client history is checked
// against (CheckHistory).
func (a Application) Model() porcupine.Model {
	if a.Ledger {
		return ledgermodel.Model
	}
	return kvmodel.Model
}

// CheckLedger checks l's invariants (nothing for the key-value store, l
// nil) and describes a violation by replica (a name for reports) and
// where (after what), or returns "". A state transfer in progress (db's
// marker set: the application's entries are partial until it finishes)
// is not checked.
func CheckLedger(l *ledger.Ledger, db *storage.DB, replica, where string) string {
	if l == nil {
		return ""
	}
	transferring, err := db.TransferInProgress()
	if err != nil {
		return fmt.Sprintf("%s %s: read the state transfer marker: %v", replica, where, err)
	}
	if transferring {
		return ""
	}
	if err := l.Invariants(); err != nil {
		return fmt.Sprintf("%s %s: %v", replica, where, err)
	}
	return ""
}
