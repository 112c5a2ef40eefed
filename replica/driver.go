package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// ErrRequestTooOld is returned by Submit for a request below its client's
// window in the executor: it executed long ago and its reply is gone.
var ErrRequestTooOld = errors.New("replica: request too old")

// ErrUnexpectedStateChunk is returned by Step for a state chunk that no
// transfer in progress asked for.
var ErrUnexpectedStateChunk = errors.New("replica: unexpected state chunk")

// ErrStateRequest is returned by Step for a state request: the runtime
// answers those from its snapshots (see Snapshots), not the driver.
var ErrStateRequest = errors.New("replica: state requests are served by the runtime")

// Driver drives one protocol core: it feeds it inputs and carries out its
// Ready in the order doc.go states. It starts no goroutine and is not
// safe for concurrent use: one goroutine owns it.
type Driver struct {
	cfg   Config
	core  *protocol.Replica
	exec  Executor
	store Storage
	net   Network
	snaps Snapshots
	obs   Observer
	log   *slog.Logger
	hooks faultHooks

	// The state transfer: the fetcher, the certificate it fetches for,
	// and what its observer noted during the last Chunk.
	fetcher *statetransfer.Fetcher
	behind  *checkpoint.Certificate
	// deferred is a newer certificate than behind, kept for when the
	// transfer of behind stalls (see startTransfer).
	deferred       *checkpoint.Certificate
	unexpected     bool
	installedBytes int

	// ep follows configuration epochs (Config.Epochs; nil without).
	ep *epochState

	// reads waits for execution to catch up (see Read).
	reads readQueue
	// receipts are the recent batches' receipts (Config.Receipts).
	receipts receiptCache
	// tent is the batch executed tentatively and not yet committed, nil
	// when none (tentative.go); tentCounts counts them.
	tent       *tentativeState
	tentCounts TentativeCounts
}

// New creates the core from cfg.Core and a Driver around it. Call Recover
// before anything else.
func New(cfg Config) (*Driver, error) {
	switch {
	case cfg.Storage == nil, cfg.Network == nil, cfg.Executor == nil, cfg.Snapshots == nil, cfg.Verifier == nil:
		return nil, errors.New("replica: Storage, Network, Executor, Snapshots and Verifier are required")
	case cfg.Core.Signer == nil:
		return nil, errors.New("replica: Core.Signer is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.Core.Logger == nil {
		cfg.Core.Logger = cfg.Logger
	}
	d := &Driver{exec: cfg.Executor, store: cfg.Storage, net: cfg.Network,
		snaps: cfg.Snapshots, obs: cfg.Observer, log: cfg.Logger}
	if cfg.Core.RelayCheck == nil {
		cfg.Core.RelayCheck = d.relayCheck
	}
	core, err := protocol.New(cfg.Core)
	if err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	d.cfg, d.core = cfg, core
	if cfg.Epochs != nil {
		if _, ok := cfg.Executor.(MembershipExecutor); !ok {
			return nil, errors.New("replica: Epochs needs an Executor with Membership")
		}
		if d.ep, err = newEpochState(*cfg.Epochs); err != nil {
			return nil, err
		}
	}
	d.fetcher = d.newFetcher()
	return d, nil
}

// relayCheck is the core's Config.RelayCheck: the signature check of
// the current epoch's verifier, which every message relayed to another
// replica must pass, for all of them in one batch verification.
func (d *Driver) relayCheck(signed []*wire.Signed) []bool {
	frames := make([]protocol.Frame, len(signed))
	for i, s := range signed {
		frames[i] = protocol.Frame{ReplicaMessage: s}
	}
	ok := make([]bool, len(signed))
	for i, v := range d.cfg.Verifier.VerifyFrames(frames) {
		ok[i] = v.Err == nil
	}
	return ok
}

// Core returns the protocol core, for reading its state (Status, View,
// IsPrimary, DescribeLog). Callers must not feed it inputs directly.
func (d *Driver) Core() *protocol.Replica { return d.core }

// Status returns the core's status.
func (d *Driver) Status() protocol.Status { return d.core.Status() }

// Transferring reports whether a state transfer is in progress.
func (d *Driver) Transferring() bool { return d.fetcher.Active() }

// Step hands the core one verified replica message; a state chunk goes to
// the transfer in progress instead. It returns why the input was dropped
// (the core's error, ErrUnexpectedStateChunk, ErrStateRequest); a dropped
// input changes nothing.
func (d *Driver) Step(m protocol.VerifiedMessage) error {
	if d.inactive() {
		return ErrNotMember
	}
	if c := m.Body.GetStateChunk(); c != nil {
		return d.handleStateChunk(m.Body.From, c)
	}
	if m.Body.GetStateRequest() != nil {
		return ErrStateRequest
	}
	return d.core.Step(m)
}

// Submit handles a verified client request: one the executor already ran
// is answered from its reply cache, one too old for the cache is dropped
// (ErrRequestTooOld), others go to the core (its error if it drops them).
func (d *Driver) Submit(req protocol.ClientRequest) error {
	if d.inactive() {
		return ErrNotMember
	}
	r := req.Request
	switch d.exec.Status(r.ClientId, r.RequestNumber) {
	case execution.RequestExecuted:
		result, _ := d.exec.CachedReply(r.ClientId, r.RequestNumber)
		d.reply(r.ClientId, r.RequestNumber, 0, result, d.receipts.lookup(r.ClientId, r.RequestNumber))
		return nil
	case execution.RequestTooOld:
		return ErrRequestTooOld
	}
	return d.core.Submit(req)
}

// Tick advances the core's clock by one tick, times out a silent state
// transfer peer, sends the held frames now due and what the Filter's
// Injector returns.
func (d *Driver) Tick() {
	d.epochTick()
	if d.inactive() {
		return
	}
	d.core.Tick()
	d.readsTick()
	d.transferTick()
	d.injectTick()
}

// Process carries out every Ready the core has, in the contract's order
// (see the package documentation). An error means storage or execution
// failed: the replica must stop (a restart recovers from Storage).
func (d *Driver) Process() error {
	for !d.inactive() && d.core.HasReady() {
		rd := d.core.Ready()
		d.obs.Ready(&rd)
		if err := d.handleReady(&rd); err != nil {
			return err
		}
	}
	if !d.inactive() {
		if err := d.retargetStalled(); err != nil {
			return err
		}
	}
	d.answerReads()
	return nil
}

// frameCache encodes each signed message once per Ready: a broadcast, its
// log entry and its copies share one encoding.
type frameCache map[*wire.Signed][]byte

func (c frameCache) encode(s *wire.Signed, batch []*wire.Signed) ([]byte, error) {
	if b, ok := c[s]; ok {
		return b, nil
	}
	b, err := protocol.EncodeFrame(s, batch)
	if err != nil {
		return nil, fmt.Errorf("replica: encode frame: %w", err)
	}
	c[s] = b
	return b, nil
}

// handleReady carries out one Ready: persist the view, send the messages
// marked BeforePersist, execute and reply to the committed batches that
// do not wait for the log (executableBeforePersist), persist the log
// (or only write it, when nothing else in the Ready needs it durable: see
// logMustBeDurable), send the rest, execute and reply to the other
// committed batches, persist the stable checkpoint, then start a state
// transfer.
func (d *Driver) handleReady(rd *protocol.Ready) error {
	frames := make(frameCache, len(rd.Messages))
	if rd.View != nil {
		if err := d.store.SaveViewState(*rd.View, rd.ViewActive); err != nil {
			return fmt.Errorf("replica: save view: %w", err)
		}
	}
	// The primary's PRE-PREPAREs may go before the log is durable (see
	// protocol.Outbound.BeforePersist): its own fsync then runs while the
	// backups receive them.
	for _, out := range rd.Messages {
		if out.BeforePersist {
			if err := d.send(out, frames.encode); err != nil {
				return err
			}
		}
	}
	entries, err := logEntries(rd.Persist, frames)
	if err != nil {
		return err
	}
	early, wait, err := d.startLog(rd, entries)
	if err != nil {
		return fmt.Errorf("replica: write log: %w", err)
	}
	for _, b := range rd.Committed[:early] {
		if err := d.execute(b); err != nil {
			_ = wait() // let the append finish before the replica stops
			return err
		}
	}
	if err := wait(); err != nil {
		return fmt.Errorf("replica: append log: %w", err)
	}
	for _, out := range rd.Messages {
		if !out.BeforePersist {
			if err := d.send(out, frames.encode); err != nil {
				return err
			}
		}
	}
	for _, b := range rd.Committed[early:] {
		if err := d.execute(b); err != nil {
			return err
		}
	}
	if cp := rd.StableCheckpoint; cp != nil {
		if err := d.persistStable(cp); err != nil {
			return err
		}
	}
	if rd.Behind != nil {
		return d.startTransfer(*rd.Behind)
	}
	d.executeTentative(rd)
	return nil
}

// startLog stores rd's log entries: written without a sync when nothing
// in rd needs them durable (logMustBeDurable; every committed batch may
// then execute at once), else appended durably, in the background when
// early batches can execute meanwhile (executableBeforePersist). early
// is how many of rd.Committed execute before wait.
func (d *Driver) startLog(rd *protocol.Ready, entries []storage.LogEntry) (early int, wait func() error, err error) {
	if len(entries) > 0 && !logMustBeDurable(rd) {
		if err := d.store.WriteLog(entries); err != nil {
			return 0, nil, err
		}
		return len(rd.Committed), func() error { return nil }, nil
	}
	early = executableBeforePersist(rd)
	return early, d.startAppend(entries, early > 0), nil
}

// logMustBeDurable reports whether rd.Persist must be durable before the
// rest of rd is carried out. It need not be when every message of rd may
// go before it anyway (Outbound.BeforePersist: the primary's new
// PRE-PREPAREs, a backup's PREPAREs close above a durable base) and rd
// changes no view, checkpoint, transfer or configuration: such entries
// are needed durable only before this replica's COMMIT for their sequence
// (its prepared certificate must survive a crash), and a COMMIT is never
// BeforePersist, so the Ready that sends it appends durably, which makes
// every entry written before it durable too (Storage.AppendLog). A crash
// before that loses only votes the restarted replica never contradicts
// (protocol.Replica.Restore). Executions and replies never depended on
// the log's fsync: a batch commits at this replica only on 2f+1 COMMITs,
// its own sent after a durable append, or on a commit certificate.
func logMustBeDurable(rd *protocol.Ready) bool {
	if rd.View != nil || rd.StableCheckpoint != nil || rd.Behind != nil {
		return true
	}
	if slices.ContainsFunc(rd.Messages, func(out protocol.Outbound) bool { return !out.BeforePersist }) {
		return true
	}
	return slices.ContainsFunc(rd.Committed, carriesConfigChange)
}

func carriesConfigChange(b protocol.CommittedBatch) bool {
	return slices.ContainsFunc(b.Requests, func(r *wire.Request) bool { return r.ConfigChange != nil })
}

// executableBeforePersist is how many of rd.Committed, from the first,
// are executed (and answered) before rd.Persist is made durable rather
// than after it. Under load a Ready that commits sequence k usually also
// logs the PRE-PREPARE, PREPARE or COMMIT of later sequences, and the
// replies of k would otherwise wait for that fsync.
//
// Safe because such a batch's decision rests only on what earlier Readies
// made durable: a batch qualifies only while no entry of rd.Persist is at
// its sequence, so this replica's PRE-PREPARE, PREPARE, prepared
// certificate and COMMIT for it (when it voted; a batch adopted from a
// commit certificate rests on the other replicas' votes) were stored before
// the core counted them; the entries of rd.Persist belong to other
// sequences, which neither the execution nor the replies depend on, and
// a crash before the append loses only messages not yet sent. The
// executor's writes were never synced on their own (a reply could always
// precede the fsync covering its execution), so a restart recovers as
// before. It stops at the first batch with an
// entry in rd.Persist (the rest keep their order), at a batch carrying a
// configuration change (so an epoch's end is noted after this Ready's
// log, as before), and takes none when rd.View is set (a view change) or
// nothing is to be persisted (no fsync to wait for: the order stays
// send, then execute).
func executableBeforePersist(rd *protocol.Ready) int {
	if rd.View != nil || len(rd.Persist) == 0 {
		return 0
	}
	for i, b := range rd.Committed {
		if slices.ContainsFunc(rd.Persist, func(e protocol.LogEntry) bool { return e.Sequence == b.Sequence }) || carriesConfigChange(b) {
			return i
		}
	}
	return len(rd.Committed)
}

// startAppend starts appending entries to Storage: on another goroutine
// when background is set and Storage is a BackgroundAppender (the early
// executions then overlap the fsync), else on this one when wait is
// called. wait returns the append's result once it is durable; either way
// nothing that depends on the entries happens before it.
func (d *Driver) startAppend(entries []storage.LogEntry, background bool) (wait func() error) {
	if len(entries) == 0 {
		return func() error { return nil }
	}
	if a, ok := d.store.(BackgroundAppender); ok && background {
		return a.StartAppendLog(entries)
	}
	return func() error { return d.store.AppendLog(entries) }
}

// logEntries encodes the Ready's log entries for Storage.
func logEntries(persist []protocol.LogEntry, frames frameCache) ([]storage.LogEntry, error) {
	if len(persist) == 0 {
		return nil, nil
	}
	entries := make([]storage.LogEntry, len(persist))
	for i, e := range persist {
		var b []byte
		var err error
		if e.Certificate != nil {
			b, err = proto.Marshal(e.Certificate)
		} else {
			b, err = frames.encode(e.Signed, e.Batch)
		}
		if err != nil {
			return nil, fmt.Errorf("replica: encode log entry at %d: %w", e.Sequence, err)
		}
		entries[i] = storage.LogEntry{View: e.View, Sequence: e.Sequence, Kind: byte(e.Kind), Signed: b}
	}
	return entries, nil
}

// send passes out through the Filter and sends (or holds) what it lets out.
func (d *Driver) send(out protocol.Outbound, encode func(*wire.Signed, []*wire.Signed) ([]byte, error)) error {
	outs := []protocol.Outbound{out}
	if d.cfg.Filter != nil {
		outs = d.cfg.Filter.Outbound(out)
	}
	delayer, _ := d.cfg.Filter.(Delayer)
	for _, o := range outs {
		b, err := encode(o.Signed, o.Batch)
		if err != nil {
			return err
		}
		if delayer != nil {
			if ticks := delayer.Delay(o); ticks > 0 && d.hold(ticks, o, b) {
				continue
			}
		}
		d.net.Send(o, b)
	}
	return nil
}

// execute applies one committed batch (or writes its tentative
// execution, see tentative.go), replies to its clients (but not again to
// those answered tentatively in its view), and at a checkpoint sequence
// takes a snapshot and hands its digest to the core.
func (d *Driver) execute(b protocol.CommittedBatch) error {
	if d.beyondEnd(b.Sequence) {
		return nil // an old-epoch batch above the end: the next epoch orders that sequence
	}
	d.obs.Executing(b)
	replies, answered, err := d.applyCommitted(b)
	if err != nil {
		return err
	}
	d.obs.Executed(b)
	d.noteExecuted()
	receipts := d.signReceipts(b.Sequence, b.Requests, replies)
	for i := range replies {
		if answered != nil && answered[i] {
			continue
		}
		r := &replies[i]
		var rr *wire.ReplyReceipt
		if receipts != nil {
			rr = receipts[i]
		}
		d.reply(r.ClientID, r.RequestNumber, b.Sequence, r.Result, rr)
	}
	if b.Sequence%d.core.CheckpointInterval() != 0 {
		return nil
	}
	snap, err := d.exec.TakeSnapshot()
	if err != nil {
		return fmt.Errorf("replica: snapshot at %d: %w", b.Sequence, err)
	}
	d.snaps.Checkpointed(snap)
	if err := d.core.CheckpointExecuted(b.Sequence, snap.Digest()); err != nil {
		// For example after a restart below the stable checkpoint.
		d.log.Warn("checkpoint", "sequence", b.Sequence, "err", err)
	}
	return nil
}

// persistStable stores a stable checkpoint's certificate (durably), then
// lets Snapshots drop what is below it and the core forget the requests
// the executor already ran.
func (d *Driver) persistStable(cp *checkpoint.Certificate) error {
	encoded, err := encodeCertificate(cp)
	if err != nil {
		return err
	}
	if err := d.store.SaveStableCheckpoint(encoded); err != nil {
		return fmt.Errorf("replica: save stable checkpoint %d: %w", cp.Sequence, err)
	}
	if x, ok := d.exec.(RollbackExecutor); ok {
		if err := x.TrackRollback(cp.Sequence); err != nil {
			return fmt.Errorf("replica: stable checkpoint %d: %w", cp.Sequence, err)
		}
	}
	d.snaps.Stable(cp.Sequence)
	d.obs.Stable(cp.Sequence)
	d.pruneRequests()
	d.noteStable(cp)
	return nil
}

// pruneRequests lets the core forget requests the executor already ran.
func (d *Driver) pruneRequests() {
	d.core.PruneRequests(func(clientID []byte, number uint64) bool {
		return d.exec.Status(clientID, number) != execution.RequestNew
	})
}

// reply sends a committed reply, with its receipt if not nil, through
// the Filter; sequence is the batch's (0 for an answer from the reply
// cache).
func (d *Driver) reply(clientID []byte, number, sequence uint64, result []byte, receipt *wire.ReplyReceipt) {
	d.sendReply(&wire.Reply{View: d.core.View(), ClientId: clientID, RequestNumber: number, Result: result, Receipt: receipt, Sequence: sequence})
}

// sendReply sets r's replica index and epoch and sends it through the
// Filter.
func (d *Driver) sendReply(r *wire.Reply) {
	r.Replica, r.Epoch = d.replyID(), d.Epoch()
	if d.cfg.Filter != nil && !d.cfg.Filter.Reply(r) {
		return
	}
	d.net.Reply(r)
}
