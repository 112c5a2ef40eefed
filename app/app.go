package app

import (
	"context"
	"io"
)

// Operation is one client request of a committed batch, as the application
// executes it.
type Operation struct {
	// Client identifies the sender, authenticated by the replica: the
	// client's Ed25519 public key (32 bytes) followed by a session of up
	// to 224 bytes. Use the key as the account an operation acts for.
	Client []byte
	// RequestNumber is the client's number for the request (unique per
	// Client; the replica executes each (Client, RequestNumber) once).
	RequestNumber uint64
	// Payload is the operation the client sent: hostile bytes.
	Payload []byte
}

// State is where an application is: the sequence of the last batch it
// executed (0: none, the initial state) and the digest of its state after
// that batch.
type State struct {
	Sequence uint64
	Digest   [32]byte
}

// Application is a deterministic state machine that pbftnode replicates.
// The package documentation states the contract every method keeps.
type Application interface {
	// Info returns the application's current State. The replica calls it
	// when it starts or reconnects and after any error, to decide whether
	// the application must be restored.
	Info(ctx context.Context) (State, error)
	// Execute executes the committed batch at sequence (always the
	// current State's Sequence+1; an empty ops still advances it), the
	// operations in order, and returns one result per operation and the
	// digest of the state after the batch. An application asked to
	// execute any other sequence (it lost state without the replica
	// seeing an error, for example after a silent restart) must return an
	// error and change nothing: the replica then calls Info and restores
	// it; executing it would put the batch on the wrong state.
	Execute(ctx context.Context, sequence uint64, ops []Operation) (results [][]byte, digest [32]byte, err error)
	// Query answers a read-only query on the current state; it must not
	// change the state. Its answer is this replica's alone, not agreed.
	Query(ctx context.Context, query []byte) ([]byte, error)
	// Snapshot writes the whole state, as of the current State, to w.
	Snapshot(ctx context.Context, w io.Writer) error
	// Restore replaces the whole state with the one r holds (written by
	// Snapshot on any replica at state.Sequence) and makes state the
	// current State; state.Sequence 0 with an empty r is the initial
	// state. The replica checks state.Digest itself after restoring;
	// the application may check it too.
	Restore(ctx context.Context, state State, r io.Reader) error
}
