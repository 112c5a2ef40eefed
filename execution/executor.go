package execution

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

const (
	executorLastKey     = storage.PrefixExecutor + "last"
	executorReplyPrefix = storage.PrefixExecutor + "reply/"
	replyEntryDomain    = "pbftnode/v1/reply-entry"
	stateDigestDomain   = "pbftnode/v1/state"
	// MaxClientIDSize bounds a request's client ID; requests with an empty
	// or longer ID are skipped (deterministically, on every replica).
	MaxClientIDSize = 256
	// maxKeptBufferSize bounds the write buffers an Executor or KV keeps
	// for reuse between batches; larger ones are dropped after use.
	maxKeptBufferSize = 1 << 20
)

// Request is one client request of a committed batch.
type Request struct {
	ClientID      []byte
	RequestNumber uint64
	Operation     []byte
	// ConfigChange, when set, makes the request a configuration change
	// (wire.Request.config_change): the executor applies it under its
	// MembershipRules, never the application.
	ConfigChange []byte
}

// Reply is the result of a request, to be sent to the client.
type Reply struct {
	ClientID      []byte
	RequestNumber uint64
	Result        []byte
}

// Executor applies committed batches in strict sequence order, each client
// request exactly once, and keeps per client a sliding window of the
// recently executed request numbers with their replies (the reply cache;
// see ClientWindow), so a client may have many requests in flight, ordered
// in any order, and a retransmitted request gets the cached reply.
//
// With a BatchApplication, each Apply is crash-atomic (see the package
// documentation). With a plain Application, the application's own writes
// are outside the executor's batch; such applications suit in-memory use
// (the simulator) where a restart also starts from an empty database.
//
// An error from Apply other than a sequence mismatch means storage failed:
// the executor's state is unchanged, but a plain Application may already
// have executed the batch, so the replica must stop.
//
// The Executor is not safe for concurrent use: the runtime calls it from
// one goroutine.
type Executor struct {
	db          *storage.DB
	ldb         *leveldb.DB
	app         Application
	batchApp    BatchApplication
	transferApp TransferableApplication
	requestApp  RequestApplication
	batchRunner BatchRunner
	logger      *slog.Logger

	lastExecuted uint64
	clients      map[string]*clientWindow
	// cacheAcc is the AdHash of the reply cache entries and the window
	// elements (windowSeqHash) of all windows.
	cacheAcc adHash
	// maxClientWindows bounds len(clients) after each Apply (see
	// evictWindows); evictHeap orders the windows for eviction.
	maxClientWindows int
	evictHeap        windowHeap
	// byKey indexes clients by client key; maxWindowsPerKey bounds each
	// key's windows after each Apply (keywindows.go).
	byKey            keyWindows
	maxWindowsPerKey int

	// restore is the state transfer in progress, nil when none.
	restore *restoreState
	// trackRollback: Apply writes rollback records (see TrackRollback);
	// the records below rollbackFloor are deleted; rollbackKeys is
	// stageRollback's reused buffer.
	trackRollback bool
	rollbackFloor uint64
	rollbackKeys  keyCollector
	// rollbackInterval, when nonzero, keeps records only for SnapshotAt
	// at its multiples (see SetRollbackInterval): rollbackRecorded holds
	// the keys already recorded in rollbackSpan, the interval of
	// sequences being executed, and rollbackPending those this Apply
	// records, added to it once the batch is written.
	rollbackInterval uint64
	rollbackSpan     uint64
	rollbackRecorded map[string]struct{}
	rollbackPending  []string

	// memberRules (nil: configuration changes refused), the membership
	// after the last executed sequence, whether it is recorded (a change
	// executed; else it is the genesis) and the SHA-256 of its record,
	// and the membership a batch in progress staged.
	memberRules    *MembershipRules
	member         Membership
	memberRecorded bool
	memberDigest   [32]byte
	stagedMember   *Membership

	// tentative is the batch ApplyTentative staged, nil when none
	// (tentative.go).
	tentative *tentativeBatch

	// Per-Apply scratch state, empty between Applies: the windows the
	// batch touched, in first-touch order, the undo log of their entries,
	// the windows evicted and the eviction heap refs popped (see Apply).
	// batch, keyBuf and valueBuf are reused buffers.
	touched  []touchedWindow
	undo     []windowChange
	evicted  []evictedWindow
	popped   []windowRef
	batch    *leveldb.Batch
	keyBuf   []byte
	valueBuf []byte
	// rollbackBuf is the reused buffer of a batch's rollback record.
	rollbackBuf []byte
}

// The executor's goleveldb batch is what a BatchApplication stages into.
var _ Batch = (*leveldb.Batch)(nil)

// touchedWindow is a window an Apply changed: its client ID, its H,
// lastSeq and window digest element before the batch, and whether the
// batch created it.
type touchedWindow struct {
	id          string
	w           *clientWindow
	prevHigh    uint64
	prevLastSeq uint64
	prevSeqHash [32]byte
	created     bool
	// prevEnd ends the window's encoding before the batch in
	// e.rollbackKeys.windows (written only when tracking rollback).
	prevEnd int
}

// revertWindows undoes the changes the current Apply made to the windows:
// entries (from the undo log, newest first), H, lastSeq, created windows
// and evictions.
func (e *Executor) revertWindows() {
	undoChanges(e.undo)
	for _, t := range e.touched {
		if t.created {
			e.dropWindow(t.id)
		} else {
			t.w.high = t.prevHigh
			t.w.lastSeq = t.prevLastSeq
			t.w.seqHash = t.prevSeqHash
		}
	}
	e.revertEvictions()
}

// resetBatchLog empties the per-Apply scratch state, dropping its
// references to windows and results.
func (e *Executor) resetBatchLog() {
	for _, t := range e.touched {
		t.w.touched = false
	}
	clear(e.touched)
	e.touched = e.touched[:0]
	clear(e.undo)
	e.undo = e.undo[:0]
	clear(e.evicted)
	e.evicted = e.evicted[:0]
	clear(e.popped)
	e.popped = e.popped[:0]
	clear(e.rollbackPending)
	e.rollbackPending = e.rollbackPending[:0]
	e.rollbackKeys.reset()
}

// loadState replaces the in-memory executor state with the one stored in
// the database, validating every record (a window's lastSeq may not exceed
// the last executed sequence), and rebuilds the eviction heap. It does not
// evict: a database holding more windows than the limit is brought under
// it by the next Apply, as on every replica.
func (e *Executor) loadState() error {
	e.resetState()
	last, err := e.ldb.Get([]byte(executorLastKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return fmt.Errorf("executor: load last executed: %w", err)
	case len(last) != 8:
		return fmt.Errorf("executor: load last executed: corrupt value of length %d, want 8", len(last))
	default:
		e.lastExecuted = binary.BigEndian.Uint64(last)
	}
	iter := e.ldb.NewIterator(util.BytesPrefix([]byte(executorReplyPrefix)), nil)
	defer iter.Release()
	for iter.Next() {
		clientID := string(iter.Key()[len(executorReplyPrefix):])
		if len(clientID) == 0 || len(clientID) > MaxClientIDSize {
			return fmt.Errorf("executor: load reply cache: client ID of invalid length %d", len(clientID))
		}
		w, err := decodeClientWindow(clientID, iter.Value())
		if err != nil {
			return fmt.Errorf("executor: load reply cache of client %x: %w", clientID, err)
		}
		if w.lastSeq > e.lastExecuted {
			return fmt.Errorf("executor: load reply cache of client %x: %w: last active sequence %d above last executed %d", clientID, errCorruptWindow, w.lastSeq, e.lastExecuted)
		}
		e.putWindow(clientID, w)
		for _, entry := range w.entries {
			e.cacheAcc.add(entry.hash)
		}
		e.cacheAcc.add(w.seqHash)
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("executor: load reply cache: %w", err)
	}
	e.rebuildEvictHeap()
	return e.loadMembership()
}

// resetState empties the in-memory executor state (last executed
// sequence, windows, reply-cache digest, eviction heap).
func (e *Executor) resetState() {
	e.forgetRollbackRecorded()
	e.lastExecuted = 0
	e.clients = make(map[string]*clientWindow)
	e.byKey = make(keyWindows)
	e.cacheAcc = adHash{}
	clear(e.evictHeap)
	e.evictHeap = e.evictHeap[:0]
	e.member, e.memberRecorded, e.memberDigest, e.stagedMember = e.genesisMembership(), false, [32]byte{}, nil
}

// NewExecutor loads the last executed sequence and the reply cache from
// db (under storage.PrefixExecutor), validating every record. app is
// normally a KV on the same db. opts may bound the number of client
// windows (WithMaxClientWindows; default DefaultMaxClientWindows).
//
// If db's state-transfer marker is set (a crash interrupted a restore; see
// RestoreBegin), the state under storage.PrefixApp and
// storage.PrefixExecutor is partial: NewExecutor logs a warning, deletes
// it, reloads app (which must then be a TransferableApplication), clears
// the marker and starts empty (LastExecuted 0). Nothing else in db is
// touched; the runtime fetches the state from peers again. A restore begun
// with RestoreBeginTagged is kept instead: the executor starts empty
// (LastExecuted 0) with that restore in progress, for RestoreResume to
// continue (or RestoreBegin, RestoreBeginTagged or RestoreAbort to wipe).
func NewExecutor(db *storage.DB, app Application, logger *slog.Logger, opts ...ExecutorOption) (*Executor, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := executorConfig{maxClientWindows: DefaultMaxClientWindows, maxWindowsPerKey: DefaultMaxWindowsPerKey}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("executor: %w", err)
		}
	}
	e := &Executor{
		db:               db,
		ldb:              db.LevelDB(),
		app:              app,
		logger:           logger,
		clients:          make(map[string]*clientWindow),
		byKey:            make(keyWindows),
		maxClientWindows: cfg.maxClientWindows,
		maxWindowsPerKey: cfg.maxWindowsPerKey,
		batch:            new(leveldb.Batch),
		memberRules:      cfg.membership,
	}
	e.member = e.genesisMembership()
	if batchApp, ok := app.(BatchApplication); ok {
		e.batchApp = batchApp
	}
	if transferApp, ok := app.(TransferableApplication); ok {
		e.transferApp = transferApp
	}
	e.requestApp, _ = app.(RequestApplication)
	e.batchRunner, _ = app.(BatchRunner)
	resumable, err := e.recoverInterruptedTransfer()
	if err != nil {
		return nil, err
	}
	if !resumable {
		if err := e.loadState(); err != nil {
			return nil, err
		}
	}
	logger.Info("executor: loaded", "last_executed", e.lastExecuted, "cached_clients", len(e.clients), "max_client_windows", e.maxClientWindows)
	return e, nil
}

// ClientWindows returns the number of client windows kept (at most the
// limit set by WithMaxClientWindows, except right after a batch that
// executed requests of more clients than that).
func (e *Executor) ClientWindows() int {
	e.settle()
	return len(e.clients)
}

// LastExecuted returns the sequence of the last applied batch (0 if none).
func (e *Executor) LastExecuted() uint64 { return e.lastExecuted }

// LastRequestNumber returns H, the highest request number executed for
// the client (not necessarily the most recently executed one), or 0 if it
// has none. Requests numbered H-ClientWindow or lower are too old.
func (e *Executor) LastRequestNumber(clientID []byte) uint64 {
	if x, ok := e.windowBefore(clientID); ok {
		return x.high
	}
	return 0
}

// Status classifies the client's request number n against the executed
// state (as of the last applied batch): RequestExecuted if it executed and
// its reply is cached, RequestTooOld if it is below the client's window
// (it will never execute and has no reply), RequestNew otherwise. The
// runtime calls it before handing a request to consensus.
func (e *Executor) Status(clientID []byte, n uint64) RequestStatus {
	if x, ok := e.windowBefore(clientID); ok {
		return x.status(n)
	}
	return RequestNew
}

// CachedReply returns the cached result of the client's request number
// requestNumber if that request executed and is still in the client's
// window.
func (e *Executor) CachedReply(clientID []byte, requestNumber uint64) ([]byte, bool) {
	x, ok := e.windowBefore(clientID)
	if !ok {
		return nil, false
	}
	entry, ok := x.entry(requestNumber)
	if !ok {
		return nil, false
	}
	return bytes.Clone(entry.result), true
}

// StateDigest returns SHA-256("pbftnode/v1/state" || app.Digest() ||
// reply-cache digest || uvarint(last executed)), the digest checkpoints
// certify. The reply-cache digest is the AdHash of one element per cached
// entry (client, n, result) of every client window,
// SHA-256("pbftnode/v1/reply-entry" || uvarint(len id) || id || uvarint(n)
// || result), and one element per window, SHA-256("pbftnode/v1/reply-window"
// || uvarint(len id) || id || uvarint(lastSeq)), so it covers the state
// that decides future window evictions. It is maintained incrementally
// (elements are added when cached or stamped and subtracted when evicted
// or restamped), so StateDigest costs O(1) when app.Digest does.
func (e *Executor) StateDigest() [32]byte {
	if e.tentative != nil {
		return e.tentative.digest // the executed state's, not the staged batch's
	}
	h := sha256.New()
	h.Write([]byte(stateDigestDomain))
	appDigest := e.app.Digest()
	h.Write(appDigest[:])
	cacheDigest := e.cacheAcc.bytes()
	h.Write(cacheDigest[:])
	h.Write(binary.AppendUvarint(nil, e.lastExecuted))
	if e.memberRecorded {
		h.Write(e.memberDigest[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Apply executes the committed batch at sequence, which must be
// LastExecuted()+1 (otherwise it returns an error and changes nothing).
// For each request, in order, with H the client's highest executed
// request number (LastRequestNumber, including earlier requests of the
// same batch):
//   - client ID empty or longer than MaxClientIDSize: skipped;
//   - too old (H >= ClientWindow and RequestNumber <= H-ClientWindow):
//     skipped, no reply;
//   - RequestNumber already executed (in the window): not executed again,
//     the cached reply is output;
//   - otherwise: executed, cached and output; if RequestNumber > H it
//     becomes the new H and the entries at or below H-ClientWindow are
//     evicted. The client's window (created if it had none) gets lastSeq =
//     sequence.
//
// Then, while more windows exist than the limit (WithMaxClientWindows),
// the window with the smallest (lastSeq, client ID) among those that
// executed no request in this batch is evicted whole: the client's next
// request is treated as new. If the batch executed requests of more
// clients than the limit, their windows are all kept and the limit is
// exceeded until later batches evict them.
//
// An empty batch (null request) only advances the sequence (and may evict
// windows). Application writes, reply cache updates (including the
// deletion of evicted windows) and the new last executed sequence are
// written in one unsynced goleveldb batch (see the package documentation
// for why no fsync is needed).
func (e *Executor) Apply(sequence uint64, requests []Request) ([]Reply, error) {
	e.settle()
	replies, cacheAcc, err := e.stage(sequence, requests)
	if err != nil {
		return nil, err
	}
	if err := e.writeStaged(sequence, cacheAcc); err != nil {
		return nil, err
	}
	return replies, nil
}

// stage executes the batch at sequence and prepares its atomic write in
// e.batch without writing it: the windows are changed in place (with
// e.touched, e.undo, e.evicted and e.popped saying how to revert them),
// a BatchApplication holds the batch's writes, and the reply cache's new
// digest accumulator is returned. writeStaged then writes it, or unstage
// reverts it; on error (or a panic of the application) stage reverts it
// itself, so the executor's state is unchanged.
func (e *Executor) stage(sequence uint64, requests []Request) ([]Reply, adHash, error) {
	if e.restore != nil {
		return nil, adHash{}, fmt.Errorf("executor: apply sequence %d: %w", sequence, errRestoreInProgress)
	}
	if sequence != e.lastExecuted+1 {
		return nil, adHash{}, fmt.Errorf("executor: apply sequence %d, want %d (last executed %d)", sequence, e.lastExecuted+1, e.lastExecuted)
	}
	if e.batchApp != nil {
		e.batchApp.Begin()
	}
	staged := false
	defer func() {
		if !staged {
			e.unstage()
		}
	}()
	cacheAcc := e.cacheAcc
	var replies []Reply
	if e.batchRunner != nil {
		var err error
		if replies, err = e.runBatch(sequence, requests, &cacheAcc); err != nil {
			return nil, adHash{}, fmt.Errorf("executor: apply sequence %d: %w", sequence, err)
		}
	} else {
		replies = e.runRequests(sequence, requests, &cacheAcc, func(req Request) []byte {
			if req.ConfigChange != nil {
				return e.applyConfigChange(sequence, req)
			}
			return e.executeOne(req)
		})
	}
	e.evictKeyWindows(&cacheAcc)
	if len(e.clients) > e.maxClientWindows {
		e.evictWindows(&cacheAcc)
	}
	if len(e.evicted) > 0 {
		e.logger.Debug("executor: evicted client windows", "sequence", sequence, "evicted", len(e.evicted), "windows", len(e.clients))
	}
	if err := e.stageBatch(sequence); err != nil {
		return nil, adHash{}, fmt.Errorf("executor: apply sequence %d: %w", sequence, err)
	}
	staged = true
	return replies, cacheAcc, nil
}

// stageBatch fills e.batch with the staged batch's writes: the
// application's, the touched and evicted windows, the membership, the
// last executed sequence and the rollback records.
func (e *Executor) stageBatch(sequence uint64) error {
	if e.batch == nil {
		e.batch = new(leveldb.Batch)
	}
	batch := e.batch
	batch.Reset()
	if e.batchApp != nil {
		if err := e.batchApp.Stage(batch); err != nil {
			return err
		}
	}
	// Windows in the order the batch first touched them: the written
	// batch does not depend on map iteration order.
	for _, t := range e.touched {
		e.keyBuf = append(append(e.keyBuf[:0], executorReplyPrefix...), t.id...)
		e.valueBuf = t.w.appendEncoded(e.valueBuf[:0])
		batch.Put(e.keyBuf, e.valueBuf)
	}
	// Evicted windows in eviction order (per key, then globally; each
	// step by (lastSeq, client ID) ascending).
	for _, ev := range e.evicted {
		e.keyBuf = append(append(e.keyBuf[:0], executorReplyPrefix...), ev.id...)
		batch.Delete(e.keyBuf)
	}
	e.stageMembership(batch)
	batch.Put([]byte(executorLastKey), binary.BigEndian.AppendUint64(e.keyBuf[:0], sequence))
	if e.trackRollback {
		return e.stageRollback(sequence, batch)
	}
	return nil
}

// unstage reverts what stage did: the windows, the application's
// buffered writes and the staged membership.
func (e *Executor) unstage() {
	e.stagedMember = nil
	e.revertWindows()
	if e.batchApp != nil {
		e.batchApp.Rollback()
	}
	e.resetBatchLog()
}

// writeStaged writes the staged batch at sequence (unsynced: see the
// package documentation for why no fsync is needed) and makes it the
// executor's state; on error it reverts it.
func (e *Executor) writeStaged(sequence uint64, cacheAcc adHash) error {
	batch := e.batch
	if err := e.ldb.Write(batch, &opt.WriteOptions{Sync: false}); err != nil {
		e.unstage()
		return fmt.Errorf("executor: apply sequence %d: write: %w", sequence, err)
	}
	e.commitRollbackRecorded()
	e.commitMembership()
	e.commitEvictHeap(sequence)
	if e.batchApp != nil {
		e.batchApp.Commit()
	}
	e.stagedMember = nil
	e.resetBatchLog()
	// Keep the reusable buffers only while they are modest.
	if len(batch.Dump()) > maxKeptBufferSize {
		e.batch = new(leveldb.Batch)
	}
	if cap(e.valueBuf) > maxKeptBufferSize {
		e.valueBuf = nil
	}
	e.cacheAcc = cacheAcc
	e.lastExecuted = sequence
	return nil
}

// executeOne executes one new request on the application.
func (e *Executor) executeOne(req Request) []byte {
	if e.requestApp != nil {
		return e.requestApp.ExecuteRequest(req.ClientID, req.Operation)
	}
	return e.app.Execute(req.Operation)
}

// runBatch runs the batch's requests on a BatchRunner: one pass finds
// the requests to execute (those runRequests would execute), the windows
// are put back as they were, the runner executes those requests in one
// call, and a second pass over the same windows records its results. The
// passes see the same windows and requests, so they pick the same
// requests in the same order. On error the windows are as before the
// batch except for what the deferred revert of Apply undoes.
func (e *Executor) runBatch(sequence uint64, requests []Request, cacheAcc *adHash) ([]Reply, error) {
	var picked []Request
	scratch := *cacheAcc
	e.runRequests(sequence, requests, &scratch, func(req Request) []byte {
		picked = append(picked, req)
		return nil
	})
	e.revertWindows()
	e.resetBatchLog()
	// Configuration changes are the executor's, not the application's.
	appRequests := picked[:0:0]
	for _, req := range picked {
		if req.ConfigChange == nil {
			appRequests = append(appRequests, req)
		}
	}
	results, err := e.batchRunner.ExecuteBatch(sequence, appRequests)
	if err != nil {
		return nil, err
	}
	if len(results) != len(appRequests) {
		return nil, fmt.Errorf("application returned %d results for %d requests", len(results), len(appRequests))
	}
	next := 0
	return e.runRequests(sequence, requests, cacheAcc, func(req Request) []byte {
		if req.ConfigChange != nil {
			return e.applyConfigChange(sequence, req)
		}
		r := results[next]
		next++
		return r
	}), nil
}

// runRequests classifies each request of the batch against the client
// windows (see Apply), calls execute for each new one, records its result
// in the client's window and returns the replies. It changes the windows
// in place, logging how to revert them (see Apply).
func (e *Executor) runRequests(sequence uint64, requests []Request, cacheAcc *adHash, execute func(Request) []byte) []Reply {
	replies := make([]Reply, 0, len(requests))
	for i, req := range requests {
		if len(req.ClientID) == 0 || len(req.ClientID) > MaxClientIDSize {
			e.logger.Warn("executor: skipping request with invalid client ID", "sequence", sequence, "index", i, "client_id_len", len(req.ClientID))
			continue
		}
		w := e.clients[string(req.ClientID)]
		if w != nil {
			switch w.status(req.RequestNumber) {
			case RequestTooOld:
				e.logger.Debug("executor: skipping request below the client window", "sequence", sequence, "index", i, "request_number", req.RequestNumber, "highest", w.high)
				continue
			case RequestExecuted:
				cached := w.entries[req.RequestNumber].result
				replies = append(replies, Reply{ClientID: bytes.Clone(req.ClientID), RequestNumber: req.RequestNumber, Result: bytes.Clone(cached)})
				continue
			}
		}
		if w == nil {
			w = newClientWindow()
			id := string(req.ClientID)
			e.putWindow(id, w)
			w.touched = true
			e.touched = append(e.touched, touchedWindow{id: id, w: w, created: true})
			w.stamp(req.ClientID, sequence, true, cacheAcc)
		} else if !w.touched {
			w.touched = true
			e.touched = append(e.touched, touchedWindow{id: string(req.ClientID), w: w, prevHigh: w.high, prevLastSeq: w.lastSeq, prevSeqHash: w.seqHash})
			e.notePriorWindow(w)
			w.stamp(req.ClientID, sequence, false, cacheAcc)
		}
		result := execute(req)
		cached := bytes.Clone(result)
		entry := windowEntry{result: cached, hash: replyHashOf(req.ClientID, req.RequestNumber, cached)}
		w.recordEntry(req.RequestNumber, entry, cacheAcc, &e.undo)
		replies = append(replies, Reply{ClientID: bytes.Clone(req.ClientID), RequestNumber: req.RequestNumber, Result: result})
	}
	return replies
}
