package apphost

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/syndtr/goleveldb/leveldb"
)

// Defaults of Options.
const (
	DefaultSnapshotEvery    = 256
	DefaultMaxJournalBytes  = 64 << 20
	DefaultMaxSnapshotBytes = 1 << 30
	DefaultCallTimeout      = 30 * time.Second
	DefaultSnapshotTimeout  = 10 * time.Minute
	DefaultRetryMin         = 50 * time.Millisecond
	DefaultRetryMax         = 2 * time.Second
)

var (
	// ErrClosed is returned (wrapped) by ExecuteBatch and Query after
	// Close, including by a call that Close interrupted.
	ErrClosed = errors.New("application host closed")
	// ErrBrokenApplication is returned (wrapped) when the application,
	// restored and replayed, does not reach the State the replica
	// recorded (it is not deterministic or misreports its State), or
	// breaks the call contract (a wrong number of results). The replica
	// must stop: retrying cannot help.
	ErrBrokenApplication = errors.New("broken application")

	errTransferOnly = errors.New("apphost: the application's state moves by checkpoint state transfer (TransferableApplication), not by Snapshot/Restore")
)

// plainExecuteResult is the result of Execute, which the executor never
// calls on a BatchRunner.
var plainExecuteResult = []byte("apphost: operations execute in batches (ExecuteBatch)")

// hostDigestDomain separates the host's digest from others.
const hostDigestDomain = "pbftnode/v1/apphost-state"

// Options tune a Host. The zero value of each field selects its default.
type Options struct {
	// Where names the application in health messages and logs (an
	// address such as "grpc://10.0.0.5:7000"). Default: the
	// application's String() when it is a fmt.Stringer (appgrpc's client
	// names its target), else "in-process".
	Where string
	// SnapshotEvery is the number of batches after which the host takes a
	// snapshot of the application (default DefaultSnapshotEvery).
	SnapshotEvery uint64
	// MaxJournalBytes: a snapshot is also taken when the journal since
	// the last one would exceed it (default DefaultMaxJournalBytes).
	MaxJournalBytes int64
	// MaxSnapshotBytes bounds a snapshot; a larger one is not stored (the
	// host logs it and keeps journaling). Default DefaultMaxSnapshotBytes.
	MaxSnapshotBytes int64
	// CallTimeout bounds each Info and Execute call (default
	// DefaultCallTimeout); SnapshotTimeout each Snapshot and Restore call
	// (default DefaultSnapshotTimeout). A call over its deadline counts as
	// a failed call (the host resyncs and retries).
	CallTimeout     time.Duration
	SnapshotTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between retries after a
	// failed call: it starts at RetryMin and doubles up to RetryMax
	// (defaults DefaultRetryMin, DefaultRetryMax).
	RetryMin time.Duration
	RetryMax time.Duration
	// Wait waits d or until ctx ends (returning ctx.Err()) between
	// retries; nil uses a timer. Any error it returns ends the retries as
	// Close does. Tests inject one that does not sleep.
	Wait func(ctx context.Context, d time.Duration) error
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxJournalBytes < 0 || o.MaxSnapshotBytes < 0 || o.CallTimeout < 0 || o.SnapshotTimeout < 0 || o.RetryMin < 0 || o.RetryMax < 0 {
		return o, errors.New("apphost: negative option")
	}
	if o.Where == "" {
		o.Where = "in-process"
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.MaxJournalBytes == 0 {
		o.MaxJournalBytes = DefaultMaxJournalBytes
	}
	if o.MaxSnapshotBytes == 0 {
		o.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.SnapshotTimeout == 0 {
		o.SnapshotTimeout = DefaultSnapshotTimeout
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.MaxSnapshotBytes > maxChunks*ChunkSize {
		return o, fmt.Errorf("apphost: MaxSnapshotBytes %d over %d", o.MaxSnapshotBytes, int64(maxChunks*ChunkSize))
	}
	if o.RetryMax < o.RetryMin {
		return o, fmt.Errorf("apphost: RetryMax %v below RetryMin %v", o.RetryMax, o.RetryMin)
	}
	if o.Wait == nil {
		o.Wait = waitTimer
	}
	return o, nil
}

func waitTimer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats counts what a Host did to keep its application in sync.
type Stats struct {
	// Resyncs counts the times the host checked, after a start, an error
	// or a rollback, whether the application was where the replica
	// recorded it.
	Resyncs uint64
	// Restores counts Restore calls; ReplayedBatches the journal batches
	// executed again after them.
	Restores        uint64
	ReplayedBatches uint64
	// Retries counts failed calls that were retried.
	Retries uint64
	// Snapshots counts the snapshots taken and stored.
	Snapshots uint64
}

// Host runs an app.Application under the executor: it implements
// execution.BatchRunner, BatchApplication, TransferableApplication and
// HealthReporter, and io.Closer (closing the application too when it is an
// io.Closer). See the package documentation for what it stores and how it
// keeps the application in sync.
//
// The executor's methods (ExecuteBatch, Begin, Stage, Commit, Rollback,
// Digest, Reload, Execute, Snapshot, Restore) must be called from one
// goroutine; Health, Stats, Query and Close are safe from any goroutine.
type Host struct {
	app    app.Application
	opts   Options
	ldb    *leveldb.DB
	logger *slog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	// callMu serialises the calls to the application (the contract: one
	// at a time), between the executor's goroutine and Query.
	callMu sync.Mutex

	// The executor goroutine's state. manifest.state.Sequence 0: no
	// snapshot stored. recorded is the State of the last recorded batch
	// (hasRecorded false: none, the initial state) and digest its host
	// digest. journalBytes sums the journal entries after the snapshot.
	manifest     manifest
	recorded     app.State
	hasRecorded  bool
	digest       [32]byte
	journalBytes int64
	// snapshotNotBefore: after a failed snapshot, none is tried before
	// this sequence.
	snapshotNotBefore uint64
	inSync            bool
	pending           *pendingBatch

	// busy is set while the executor's goroutine uses the application
	// (ExecuteBatch, Reload): Health then starts no probe.
	busy atomic.Bool

	// Health state: health is the last failure (nil: available); broken
	// keeps it for good. probing, lastProbe and probeBackoff pace the
	// probes Health starts while the host is idle and unhealthy.
	healthMu     sync.Mutex
	health       error
	broken       bool
	probing      bool
	lastProbe    time.Time
	probeBackoff time.Duration

	resyncs, restores, replayed, retries, snapshots atomic.Uint64
}

// pendingBatch is a batch the application executed that the replica has
// not yet recorded (between ExecuteBatch and Commit or Rollback).
type pendingBatch struct {
	state    app.State
	journal  []byte
	snapshot *takenSnapshot
}

// takenSnapshot is a snapshot of the application at the pending batch.
type takenSnapshot struct {
	chunks [][]byte
	total  uint64
}

var (
	_ execution.BatchRunner             = (*Host)(nil)
	_ execution.BatchApplication        = (*Host)(nil)
	_ execution.TransferableApplication = (*Host)(nil)
	_ execution.HealthReporter          = (*Host)(nil)
	_ io.Closer                         = (*Host)(nil)
)

// Opener returns the execution.Opener that runs a on a replica's
// database (see Open); a must be a fresh or persistent application that
// no other replica shares.
func Opener(a app.Application, o Options) execution.Opener {
	return func(db *storage.DB, logger *slog.Logger) (execution.Application, error) {
		return Open(db, a, o, logger)
	}
}

// Open loads the host's records from db (under storage.PrefixApp+"x/"),
// validating them, and tries once to bring a in sync with them (a failure
// to reach a is logged and reported by Health; ExecuteBatch retries).
// While db's state-transfer marker is set the records are partial: Open
// leaves them to the executor (which wipes them or resumes the transfer)
// and to Reload.
// It fails on invalid options, corrupt records, or an application found
// broken (ErrBrokenApplication).
func Open(db *storage.DB, a app.Application, o Options, logger *slog.Logger) (*Host, error) {
	if a == nil {
		return nil, errors.New("apphost: nil application")
	}
	if s, ok := a.(fmt.Stringer); ok && o.Where == "" {
		o.Where = s.String()
	}
	opts, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{app: a, opts: opts, ldb: db.LevelDB(), logger: logger.With("application", opts.Where), ctx: ctx, cancel: cancel}
	inTransfer, err := db.TransferInProgress()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("apphost: open: %w", err)
	}
	if inTransfer {
		// The records are partial: the executor wipes them or resumes the
		// transfer, and Reload loads them when it ends.
		h.digest = hostDigest(app.State{})
		h.logger.Info("apphost: opened during an interrupted state transfer; the records load when it ends")
		return h, nil
	}
	if err := h.loadRecords(); err != nil {
		cancel()
		return nil, fmt.Errorf("apphost: open: %w", err)
	}
	if err := h.ensureSync(h.ctx); err != nil {
		if errors.Is(err, ErrBrokenApplication) || isFatal(err) {
			cancel()
			return nil, fmt.Errorf("apphost: open: %w", err)
		}
		h.markUnavailable(err)
	}
	h.logger.Info("apphost: opened", "recorded_sequence", h.recorded.Sequence, "snapshot_sequence", h.manifest.state.Sequence, "in_sync", h.inSync)
	return h, nil
}

// hostDigest is the digest the host reports for the application at s:
// SHA-256(domain || uint64 s.Sequence || s.Digest). It covers the
// sequence, so a state transfer whose journal stops short of the
// certified sequence fails the digest check even when the skipped
// batches left the application's digest unchanged.
func hostDigest(s app.State) [32]byte {
	h := sha256.New()
	h.Write([]byte(hostDigestDomain))
	h.Write(binary.BigEndian.AppendUint64(nil, s.Sequence))
	h.Write(s.Digest[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Digest returns the host digest (see hostDigest) of the pending batch
// during a batch, else of the recorded state. O(1).
func (h *Host) Digest() [32]byte {
	if h.pending != nil {
		return hostDigest(h.pending.state)
	}
	return h.digest
}

// Recorded returns the State of the application the replica recorded
// (Sequence 0: none yet).
func (h *Host) Recorded() app.State { return h.recorded }

// Execute is never called by the executor on a BatchRunner; it returns a
// fixed error result.
func (h *Host) Execute([]byte) []byte { return plainExecuteResult }

// Snapshot fails: the state moves by state transfer.
func (h *Host) Snapshot() ([]byte, error) { return nil, errTransferOnly }

// Restore fails: the state moves by state transfer.
func (h *Host) Restore([]byte) error { return errTransferOnly }

// Query passes query to the application (never concurrently with another
// call to it). It fails with ErrClosed after Close.
func (h *Host) Query(ctx context.Context, query []byte) ([]byte, error) {
	h.callMu.Lock()
	defer h.callMu.Unlock()
	if h.ctx.Err() != nil {
		return nil, fmt.Errorf("apphost: query: %w", ErrClosed)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	return h.app.Query(ctx, query)
}

// Health returns nil while the application answers, else an error
// "application at <where>: <the last failure>". An application with a
// Health() error method of its own (a client that knows its connection is
// down) is asked too while the host saw no failure.
//
// While the host is unhealthy (and not broken) and the executor is not
// using the application, Health starts a probe in the background (one
// Info call, no more often than the retry backoff allows) that clears the
// failure when the application answers again, so an idle replica becomes
// ready once its application is back.
func (h *Host) Health() error {
	h.healthMu.Lock()
	err := h.health
	start := err != nil && !h.broken && !h.probing && !h.busy.Load() && h.ctx.Err() == nil &&
		time.Since(h.lastProbe) >= h.probeBackoff
	if start {
		h.probing, h.lastProbe = true, time.Now()
	}
	h.healthMu.Unlock()
	if start {
		go h.probe()
	}
	if err != nil {
		return err
	}
	if hr, ok := h.app.(interface{ Health() error }); ok {
		if err := hr.Health(); err != nil {
			return fmt.Errorf("application at %s: %w", h.opts.Where, err)
		}
	}
	return nil
}

// probe asks Info once, unless the executor is calling the application,
// and records the outcome in Health.
func (h *Host) probe() {
	var err error
	probed := h.callMu.TryLock()
	if probed {
		ctx, cancel := context.WithTimeout(h.ctx, h.opts.CallTimeout)
		_, err = h.app.Info(ctx)
		cancel()
		h.callMu.Unlock()
	}
	h.healthMu.Lock()
	defer h.healthMu.Unlock()
	h.probing = false
	if !probed || h.broken || h.health == nil || h.ctx.Err() != nil {
		return
	}
	if err != nil {
		h.probeBackoff = min(max(2*h.probeBackoff, h.opts.RetryMin), h.opts.RetryMax)
		h.health = fmt.Errorf("application at %s: info: %w", h.opts.Where, err)
		return
	}
	h.logger.Info("apphost: application available again")
	h.health, h.probeBackoff = nil, 0
}

// Stats returns the host's counters.
func (h *Host) Stats() Stats {
	return Stats{
		Resyncs:         h.resyncs.Load(),
		Restores:        h.restores.Load(),
		ReplayedBatches: h.replayed.Load(),
		Retries:         h.retries.Load(),
		Snapshots:       h.snapshots.Load(),
	}
}

// Close ends every call in progress and every wait (ExecuteBatch then
// returns an error wrapping ErrClosed) and closes the application if it is
// an io.Closer. It is idempotent and safe from any goroutine; it does not
// close the database.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.cancel()
		if c, ok := h.app.(io.Closer); ok {
			if err := c.Close(); err != nil {
				h.closeErr = fmt.Errorf("apphost: close application: %w", err)
			}
		}
	})
	return h.closeErr
}

// markUnavailable records a failed call in Health, logging the first
// failure of an outage.
func (h *Host) markUnavailable(err error) {
	h.healthMu.Lock()
	defer h.healthMu.Unlock()
	if h.broken {
		return
	}
	h.broken = errors.Is(err, ErrBrokenApplication)
	if h.health == nil {
		h.logger.Warn("apphost: application unavailable; retrying until it answers", "err", err)
	}
	h.health = fmt.Errorf("application at %s: %w", h.opts.Where, err)
}

// markAvailable clears Health after a successful call.
func (h *Host) markAvailable() {
	h.healthMu.Lock()
	defer h.healthMu.Unlock()
	if h.health != nil && !h.broken {
		h.logger.Info("apphost: application available again")
		h.health, h.probeBackoff = nil, 0
	}
}

// Counters reports Stats as execution.Counters (the replica exports them
// as pbftnode_application_<name>_total).
func (h *Host) Counters() []execution.Counter {
	s := h.Stats()
	return []execution.Counter{
		{Name: "resyncs", Help: "Times the replica checked whether its application was where it recorded it (after a start, an error or a rollback).", Value: s.Resyncs},
		{Name: "restores", Help: "Times the replica restored its application from its recorded snapshot.", Value: s.Restores},
		{Name: "replayed_batches", Help: "Recorded batches executed again on the application after a restore.", Value: s.ReplayedBatches},
		{Name: "retries", Help: "Calls to the application that failed and were retried.", Value: s.Retries},
		{Name: "snapshots", Help: "Snapshots of the application taken and recorded.", Value: s.Snapshots},
	}
}
