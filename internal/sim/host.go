package sim

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

func unmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

// Errors the simulator's plug-ins return to stop a Ready half-way.
var (
	// errTorn: the schedule crashes the replica between its early sends
	// and its log append (MemoryStorage.BeforeAppend).
	errTorn = errors.New("sim: torn crash")
	// errStopped: a check failed; the run stops.
	errStopped = errors.New("sim: run stopped")
)

// host is one simulated replica process: the production driver
// (replica.Driver) over the virtual network, an in-memory Storage (what a
// restart recovers) and an executor on an in-memory goleveldb. What is
// simulation lives here: crashes, restarts, twins, torn writes.
type host struct {
	w  *world
	id uint32
	// twin is 0, or 1 and 2 for the two copies of a Twins replica; side
	// (nil for a normal replica) is the set of replicas a twin talks to.
	twin int
	side map[uint32]bool
	// filter, when set, makes the replica Byzantine.
	filter outFilter
	// readMemo: a Byzantine replica's last answer to each read operation
	// (see staleRead).
	readMemo map[string][]byte
	correct  bool
	cfg      protocol.Config

	// Reconfiguration runs (reconfig.go): key is the key the host signs
	// with; verifier checks its epoch's frames; history is given to a
	// joiner's driver; rotateTo, when set, is the key it restarts with
	// once its old key is rotated away.
	key      ed25519.PrivateKey
	verifier *protocol.MessageVerifier
	history  membership.History
	rotateTo ed25519.PrivateKey

	driver *replica.Driver
	// core is the driver's core, for reading its state.
	core *protocol.Replica
	db   *storage.DB
	exec *execution.Executor
	// ledger is the application when the run is a ledger run (nil for
	// the key-value store), for the invariant checks.
	ledger *ledger.Ledger
	// store is the protocol state that survives a crash.
	store *replica.MemoryStorage
	// snaps are state snapshots taken at checkpoints (in memory: a crash
	// loses them), served to replicas that transfer state.
	snaps *replica.MemorySnapshots

	down  bool
	epoch uint64
	// tornArmedAt, when positive, is the tick the schedule chose to crash
	// this replica in the middle of its next Ready that sends messages
	// before persisting (see beforeAppend).
	tornArmedAt int64
	// earlySent: the Ready being handled sent messages before persisting.
	earlySent bool
	// extra is the network delay the filter's delayer adds to the
	// messages it is letting out now.
	extra int64
}

func (h *host) label() string {
	switch {
	case h.twin > 0:
		return fmt.Sprintf("twin%d", h.twin)
	case !h.correct:
		return "byz"
	}
	return ""
}

// start creates the executor and a driver over the host's storage and
// recovers what the storage holds (nothing on the first start); with
// restore, as after a crash, it then handles what the core has to do.
func (h *host) start(restore bool) error {
	if h.store == nil {
		h.store = replica.NewMemoryStorage()
		h.store.BeforeAppend = h.beforeAppend
	}
	app, l, err := h.w.app.Open(h.db)
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.ledger = l
	var opts []execution.ExecutorOption
	var epochs *replica.Epochs
	h.verifier = h.w.verifier
	if h.w.admin != nil {
		var opt execution.ExecutorOption
		epochs, opt = h.epochsFor()
		opts = append(opts, opt)
		h.verifier = h.w.verifierFor(h.w.genesis)
	}
	exec, err := execution.NewExecutor(h.db, app, nil, opts...)
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.exec = exec
	h.snaps = replica.NewMemorySnapshots(h.store)
	cfg := replica.Config{
		Core: h.cfg, Storage: h.store, Network: hostNetwork{h}, Executor: hostExecutor{exec, h},
		Snapshots: h.snaps, Verifier: h.verifier, Observer: hostObserver{h: h}, Epochs: epochs,
		TransferWindow: transferWindow,
	}
	if h.filter != nil {
		cfg.Filter = hostFilter{h}
	}
	d, err := replica.New(cfg)
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.driver, h.core = d, d.Core()
	if err := d.Recover(); err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	if restore {
		h.process()
	}
	h.checkLedger("after recovery")
	return nil
}

// checkLedger checks a correct replica's ledger invariants (a ledger run
// only) after what changed its state.
func (h *host) checkLedger(where string) {
	if h.ledger == nil || !h.correct || h.w.stop || h.exec == nil {
		return
	}
	name := fmt.Sprintf("replica %d", h.id)
	if d := simkit.CheckLedger(h.ledger, h.db, name, fmt.Sprintf("%s (executed %d)", where, h.exec.LastExecuted())); d != "" {
		h.w.violate(simkit.KindLedgerInvariant, d)
	}
}

// crash stops the replica: messages in flight to it are lost, in-memory
// state (the driver, the core, snapshots) is gone, and so is a random
// suffix of the log entries written without a sync (a power loss); the
// rest of the storage and the database stay.
func (h *host) crash() {
	lost := 0
	if n := h.store.Unsynced(); n > 0 {
		lost = h.store.LoseUnsynced(h.w.rng.IntN(n + 1))
		h.w.res.LostLogEntries += uint64(lost)
	}
	if h.w.cfg.Trace != nil {
		fmt.Fprintf(h.w.cfg.Trace, "crash step=%d tick=%d replica=%d%s lost_log_entries=%d\n", h.w.steps, h.w.now, h.id, h.label(), lost)
	}
	h.down = true
	h.tornArmedAt = 0
	h.epoch++
	h.snaps.ReleaseAll()
	h.snaps = nil
	h.driver, h.core, h.exec = nil, nil, nil
}

func (h *host) restart() {
	if h.w.cfg.Trace != nil {
		fmt.Fprintf(h.w.cfg.Trace, "restart step=%d tick=%d replica=%d%s\n", h.w.steps, h.w.now, h.id, h.label())
	}
	h.down = false
	if err := h.start(true); err != nil {
		h.w.violate(KindInternal, fmt.Sprintf("restart: %v", err))
	}
}

func (h *host) tick() {
	h.extra = 0
	h.driver.Tick()
	h.process()
}

func (h *host) step(vm protocol.VerifiedMessage) {
	if req := vm.Body.GetStateRequest(); req != nil {
		h.serveState(vm.Body.From, req)
		return
	}
	_ = h.driver.Step(vm) // a dropped input changes nothing; the reason is the core's business
	h.process()
}

// submit hands a verified client request to the driver (which answers an
// executed one from the reply cache).
func (h *host) submit(_ int, req protocol.ClientRequest) {
	_ = h.driver.Submit(req)
	h.process()
}

// process has the driver handle the core's Ready; a torn write crashes
// the replica there, any other failure is a violation.
func (h *host) process() {
	err := h.driver.Process()
	switch {
	case err == nil, errors.Is(err, errStopped):
	case errors.Is(err, errTorn):
		h.w.sched.tornCrash(h.w, h)
	default:
		h.w.violate(KindInternal, fmt.Sprintf("replica %d%s: %v", h.id, h.label(), err))
	}
}

// beforeAppend fails the log append of a replica armed for a torn crash
// whose Ready already sent messages early.
func (h *host) beforeAppend() error {
	if h.earlySent && h.tornArmedAt > 0 {
		return errTorn
	}
	return nil
}

// hostNetwork puts what the driver sends on the virtual network.
type hostNetwork struct{ h *host }

func (n hostNetwork) Send(out protocol.Outbound, _ []byte) {
	h := n.h
	if h.w.stop {
		return
	}
	if h.correct {
		if d := h.w.votes.check(h.id, out); d != "" {
			h.w.violate(KindEquivocation, d)
			return
		}
	}
	if out.BeforePersist {
		h.earlySent = true
	}
	h.w.sendReplica(h, out, h.extra)
}

func (n hostNetwork) Reply(r *wire.Reply) {
	if a := n.h.w.admin; a != nil && string(r.ClientId) == string(a.signer.Public()) {
		n.h.w.adminReply(n.h.id, r)
		return
	}
	client := n.h.w.clientIndex(r.ClientId)
	if client < 0 {
		return // not one of the simulated clients (a Byzantine replica's own)
	}
	n.h.w.sendReply(n.h.id, client, r)
}

// hostExecutor stops applying once a check failed.
type hostExecutor struct {
	*execution.Executor
	h *host
}

func (e hostExecutor) Apply(sequence uint64, requests []execution.Request) ([]execution.Reply, error) {
	if e.h.w.stop {
		return nil, errStopped
	}
	replies, err := e.Executor.Apply(sequence, requests)
	return e.written(sequence, replies, err)
}

// CommitTentative writes a tentative execution, as Apply would the
// batch, and checks the ledger after it.
func (e hostExecutor) CommitTentative(sequence uint64) ([]execution.Reply, error) {
	if e.h.w.stop {
		return nil, errStopped
	}
	replies, err := e.Executor.CommitTentative(sequence)
	return e.written(sequence, replies, err)
}

// written checks the ledger after the batch at sequence was written
// (err nil) and passes the write's results on.
func (e hostExecutor) written(sequence uint64, replies []execution.Reply, err error) ([]execution.Reply, error) {
	if err == nil {
		e.h.checkLedger(fmt.Sprintf("after sequence %d", sequence))
	}
	return replies, err
}

// hostObserver runs the checkers and counts state transfers.
type hostObserver struct {
	replica.NopObserver
	h *host
}

func (o hostObserver) Ready(*protocol.Ready) { o.h.earlySent = false }

// Executing lets the checkers see a batch before it executes, so that a
// disagreement is caught at the step it happens.
func (o hostObserver) Executing(b protocol.CommittedBatch) {
	if o.h.correct && !o.h.w.stop {
		o.h.w.check.executed(o.h, b)
	}
}

func (o hostObserver) TransferInstalled(seq uint64, from uint32, _ int) {
	h := o.h
	h.w.res.StateTransfers++
	if !h.correct {
		return
	}
	h.checkLedger(fmt.Sprintf("after installing sequence %d from replica %d", seq, from))
	var src *host
	for _, s := range h.w.byID[h.memberOf(from)] {
		if s.correct {
			src = s
		}
	}
	h.w.check.installed(h, src, seq)
}

// hostFilter is the host's Byzantine strategy as the driver's Filter,
// with the strategy's network delay (delayer), tick delay (tickDelayer)
// and injections (injector), when it has them.
type hostFilter struct{ h *host }

func (f hostFilter) Outbound(out protocol.Outbound) []protocol.Outbound {
	h := f.h
	h.extra = 0
	if d, ok := h.filter.(delayer); ok {
		h.extra = d.extraDelay(out)
	}
	return h.filter.Outbound(out)
}

func (f hostFilter) Reply(r *wire.Reply) bool {
	f.h.w.forgeRead(r)
	return f.h.filter.Reply(r)
}

func (f hostFilter) Delay(out protocol.Outbound) uint64 {
	if d, ok := f.h.filter.(tickDelayer); ok {
		return d.Delay(out)
	}
	return 0
}

func (f hostFilter) Inject(tick uint64, st protocol.Status) []protocol.Outbound {
	if inj, ok := f.h.filter.(injector); ok && !f.h.w.stop {
		return inj.Inject(tick, st)
	}
	return nil
}

// signerFor returns replica i's signer.
func (w *world) signerFor(i uint32) *crypto.Signer { return crypto.NewSigner(w.keys[i], clusterID) }
