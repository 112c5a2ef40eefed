package apphost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/execution"
)

// fatalError is a failure retrying cannot fix (the host's own records are
// corrupt or unreadable).
type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }
func (f fatalError) Unwrap() error { return f.err }

func fatal(err error) error { return fatalError{err} }

func isFatal(err error) bool {
	var f fatalError
	return errors.As(err, &f)
}

// ExecuteBatch executes the batch at sequence (the recorded sequence + 1)
// on the application, first bringing it in sync if needed, and keeps the
// new State (and, when due, a snapshot) pending for Stage and Commit. A
// failed call marks the host unhealthy, and after a backoff the host
// resyncs and retries, until the batch executes or Close (an error
// wrapping ErrClosed). An application found broken, or corrupt records,
// end it with an error: the replica must stop.
func (h *Host) ExecuteBatch(sequence uint64, requests []execution.Request) ([][]byte, error) {
	if h.pending != nil {
		return nil, fmt.Errorf("apphost: execute sequence %d: batch %d already executed and not committed", sequence, h.pending.state.Sequence)
	}
	if sequence != h.recorded.Sequence+1 {
		return nil, fmt.Errorf("apphost: execute sequence %d: recorded sequence is %d", sequence, h.recorded.Sequence)
	}
	journal := encodeJournal(requests)
	if len(journal) > MaxJournalEntryBytes {
		return nil, fmt.Errorf("apphost: execute sequence %d: %d bytes of requests over the journal limit %d", sequence, len(journal), MaxJournalEntryBytes)
	}
	h.busy.Store(true)
	defer h.busy.Store(false)
	ops := toOperations(requests)
	var results [][]byte
	var digest [32]byte
	err := h.retry(func(ctx context.Context) error {
		if err := h.ensureSync(ctx); err != nil {
			return err
		}
		var err error
		results, digest, err = h.execute(ctx, sequence, ops)
		if err != nil {
			h.inSync = false
			return err
		}
		if len(results) != len(ops) {
			h.inSync = false
			return fmt.Errorf("%w: %d results for %d operations at sequence %d", ErrBrokenApplication, len(results), len(ops), sequence)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apphost: execute sequence %d: %w", sequence, err)
	}
	h.pending = &pendingBatch{state: app.State{Sequence: sequence, Digest: digest}, journal: journal}
	if h.snapshotDue(sequence, len(journal)) {
		h.pending.snapshot = h.takeSnapshot(sequence)
	}
	return results, nil
}

// retry runs attempt until it succeeds, fails with a broken application
// or a fatal error, or the host is closed; between attempts it waits with
// exponential backoff. Each failure is reported by Health.
func (h *Host) retry(attempt func(ctx context.Context) error) error {
	backoff := h.opts.RetryMin
	for {
		err := attempt(h.ctx)
		switch {
		case err == nil:
			h.markAvailable()
			return nil
		case h.ctx.Err() != nil:
			return fmt.Errorf("%w (last failure: %w)", ErrClosed, err)
		case errors.Is(err, ErrBrokenApplication), isFatal(err):
			h.markUnavailable(err)
			return err
		}
		h.markUnavailable(err)
		h.retries.Add(1)
		if werr := h.opts.Wait(h.ctx, backoff); werr != nil || h.ctx.Err() != nil {
			return fmt.Errorf("%w (last failure: %w)", ErrClosed, err)
		}
		backoff = min(2*backoff, h.opts.RetryMax)
	}
}

// ensureSync brings the application to the recorded state unless it is
// known to be there: if Info reports the recorded State (or the initial
// state when nothing is recorded) it is in sync; otherwise it is
// restored from the snapshot and the journal replayed, and then it must
// report the recorded State, or it is broken.
func (h *Host) ensureSync(ctx context.Context) error {
	if h.inSync {
		return nil
	}
	h.resyncs.Add(1)
	info, err := h.info(ctx)
	if err != nil {
		return err
	}
	if h.matchesRecorded(info) {
		h.inSync = true
		return nil
	}
	h.logger.Info("apphost: application not at the recorded state; restoring it", "application_sequence", info.Sequence, "recorded_sequence", h.recorded.Sequence, "snapshot_sequence", h.manifest.state.Sequence)
	got, err := h.restoreAndReplay(ctx, h.recorded.Sequence)
	if err != nil {
		return err
	}
	if !h.matchesRecorded(got) {
		return fmt.Errorf("%w: restored to sequence %d and replayed to %d, the application reports sequence %d digest %x, the replica recorded sequence %d digest %x: the application is not deterministic or misreports its state",
			ErrBrokenApplication, h.manifest.state.Sequence, h.recorded.Sequence, got.Sequence, got.Digest, h.recorded.Sequence, h.recorded.Digest)
	}
	h.inSync = true
	return nil
}

// matchesRecorded reports whether s is the recorded state (any State at
// sequence 0 when nothing is recorded: the initial state).
func (h *Host) matchesRecorded(s app.State) bool {
	if !h.hasRecorded {
		return s.Sequence == 0
	}
	return s == h.recorded
}

// restoreAndReplay restores the application from the stored snapshot (the
// initial state when none), executes the journal up to end again and
// returns the State the application then reports.
func (h *Host) restoreAndReplay(ctx context.Context, end uint64) (app.State, error) {
	m := h.manifest
	reader := &chunkReader{ldb: h.ldb, m: m}
	h.restores.Add(1)
	if err := h.call(ctx, h.opts.SnapshotTimeout, "restore", func(ctx context.Context) error {
		return h.app.Restore(ctx, m.state, reader)
	}); err != nil {
		if reader.err != nil {
			return app.State{}, reader.err
		}
		return app.State{}, err
	}
	if reader.err != nil {
		return app.State{}, reader.err
	}
	for seq := m.state.Sequence + 1; seq <= end; seq++ {
		ops, err := h.readJournal(seq)
		if err != nil {
			return app.State{}, err
		}
		results, _, err := h.execute(ctx, seq, ops)
		if err != nil {
			return app.State{}, fmt.Errorf("replay: %w", err)
		}
		if len(results) != len(ops) {
			return app.State{}, fmt.Errorf("%w: %d results for %d operations replaying sequence %d", ErrBrokenApplication, len(results), len(ops), seq)
		}
		h.replayed.Add(1)
	}
	return h.info(ctx)
}

// info calls Info.
func (h *Host) info(ctx context.Context) (app.State, error) {
	var s app.State
	err := h.call(ctx, h.opts.CallTimeout, "info", func(ctx context.Context) error {
		var err error
		s, err = h.app.Info(ctx)
		return err
	})
	return s, err
}

// execute calls Execute.
func (h *Host) execute(ctx context.Context, seq uint64, ops []app.Operation) (results [][]byte, digest [32]byte, err error) {
	err = h.call(ctx, h.opts.CallTimeout, fmt.Sprintf("execute sequence %d", seq), func(ctx context.Context) error {
		var err error
		results, digest, err = h.app.Execute(ctx, seq, ops)
		return err
	})
	return results, digest, err
}

// call makes one call to the application with a deadline, serialised
// with Query, and wraps its error with what was called.
func (h *Host) call(ctx context.Context, timeout time.Duration, what string, f func(context.Context) error) error {
	h.callMu.Lock()
	defer h.callMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := f(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// snapshotDue reports whether a snapshot is taken at seq: SnapshotEvery
// batches after the last one, or when the journal would pass
// MaxJournalBytes, and not soon after a failed one.
func (h *Host) snapshotDue(seq uint64, journalLen int) bool {
	if seq < h.snapshotNotBefore {
		return false
	}
	return seq-h.manifest.state.Sequence >= h.opts.SnapshotEvery ||
		h.journalBytes+int64(journalLen) > h.opts.MaxJournalBytes
}

// takeSnapshot takes a snapshot of the application after the pending
// batch, or returns nil (logged; the journal goes on) when it fails or is
// over MaxSnapshotBytes: then no snapshot is tried for SnapshotEvery
// batches.
func (h *Host) takeSnapshot(seq uint64) *takenSnapshot {
	w := &chunkWriter{limit: uint64(h.opts.MaxSnapshotBytes)}
	err := h.call(h.ctx, h.opts.SnapshotTimeout, "snapshot", func(ctx context.Context) error {
		return h.app.Snapshot(ctx, w)
	})
	if err != nil {
		h.snapshotNotBefore = seq + h.opts.SnapshotEvery
		if errors.Is(err, errSnapshotTooBig) {
			h.logger.Warn("apphost: snapshot too big to store; journaling on", "sequence", seq, "err", err)
		} else if h.ctx.Err() == nil {
			h.markUnavailable(err)
		}
		return nil
	}
	h.markAvailable()
	h.snapshots.Add(1)
	return &takenSnapshot{chunks: w.chunks, total: w.total}
}
