package raftsim

import (
	"fmt"
	"math/rand/v2"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/raftreplica"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// tuning is the seed's choice of the Core's limits, the same on every
// replica.
type tuning struct {
	snapshotInterval uint64
	maxBatchSize     int
	maxInflightMsgs  int
	maxSizePerMsg    uint64
}

// host is one simulated replica process: its database (what a crash
// keeps), and the executor, raft log, Core and driver built from it (what
// a crash loses), plus the runtime's snapshot server. It is the driver's
// Network, Snapshots and Observer.
type host struct {
	w  *world
	id uint32
	// spare: started outside the configuration (a reconfiguration run).
	spare bool
	// jointKey is the joint configuration this replica was in after its
	// last Process ("" when none; joint.go).
	jointKey string

	db *storage.DB
	// kv is the application of a key-value run, ledger that of a ledger
	// run (the other is nil); hook is their checkers' hook.
	kv      *recordingApp
	ledger  *ledger.Ledger
	hook    *applyHook
	exec    *execution.Executor
	raftLog *raftlog.Log
	core    *raftmode.Core
	// driver drives core in the runtime's order, and owns the state
	// transfer.
	driver *raftreplica.Driver

	// snaps are the snapshots this process serves, oldest first, at most
	// two (node/raftnode/snapshots.go's serveSnapshots).
	snaps []*execution.StateSnapshot
	// clients are the clients with a stream to this process: a replica
	// replies to a client only over the client's own stream.
	clients map[int]bool

	down bool
	// ledgerChecked is the applied index at which process last checked
	// the ledger's invariants.
	ledgerChecked uint64
	// epoch counts incarnations; wipedEpoch is the first incarnation after
	// the latest wipe.
	epoch, wipedEpoch uint64
}

// start builds the executor, raft log and Core from what the database
// holds, as raftnode.Start does.
func (h *host) start() error {
	w := h.w
	app, l, err := w.app.Open(h.db)
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.hook, h.ledger, h.kv = &applyHook{h: h}, l, nil
	if l != nil {
		app = &recordingLedger{Ledger: l, hook: h.hook}
	} else {
		h.kv = &recordingApp{KV: app.(*execution.KV), hook: h.hook, alterPuts: w.cfg.Plant == PlantAlterOp && h.id == 0}
		app = h.kv
	}
	var opts []execution.ExecutorOption
	if w.reconf != nil {
		opts = append(opts, execution.WithMembership(w.reconf.rules))
	}
	if h.exec, err = execution.NewExecutor(h.db, app, nil, opts...); err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	w.check.restarted(h)
	if h.raftLog, err = raftlog.Open(h.db); err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.hook.exec, h.hook.raftLog = h.exec, h.raftLog
	h.clients = map[int]bool{}
	logger := w.log.With("replica", h.id)
	h.core, err = raftmode.New(raftmode.Config{
		Index: h.id, N: w.genesis, Spare: h.spare, Log: h.raftLog, Executor: h.exec,
		Rand:          rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64())),
		ElectionTicks: ElectionTicks, HeartbeatTicks: HeartbeatTicks,
		MaxBatchSize: w.tuning.maxBatchSize, MaxInflightMsgs: w.tuning.maxInflightMsgs,
		MaxSizePerMsg: w.tuning.maxSizePerMsg, SnapshotInterval: w.tuning.snapshotInterval,
		// One interval, as before SnapshotCatchUpEntries: the seeds' short
		// runs must compact to exercise state transfer.
		SnapshotCatchUpEntries: w.tuning.snapshotInterval,
		Logger:                 logger,
	})
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.driver = raftreplica.New(raftreplica.Config{
		Self: h.id, N: w.genesis, Core: h.core, App: simRestorer{Executor: h.exec, h: h},
		Network: h, Snapshots: h, Observer: h, Logger: logger,
	})
	waiting := h.core.WaitingForState() != nil
	if waiting {
		// raftnode.Start fetches this state as the driver starts (Process
		// never reports this need): the simulator counts these restarts.
		w.res.WaitingRestarts++
	}
	// Fetch the state the Core waits for, or serve the state this replica
	// starts with, as raftnode.Start does.
	if err := h.driver.Start(); err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	if !waiting {
		w.check.digestAt(h, h.exec.LastExecuted(), h.exec.StateDigest())
		h.checkLedger("after start")
	}
	return nil
}

// checkLedger checks the ledger's invariants (a ledger run only) where
// says when.
func (h *host) checkLedger(where string) {
	if h.ledger == nil || h.w.stop {
		return
	}
	name := fmt.Sprintf("replica %d", h.id)
	if d := simkit.CheckLedger(h.ledger, h.db, name, fmt.Sprintf("%s (applied %d)", where, h.exec.LastExecuted())); d != "" {
		h.w.violate(simkit.KindLedgerInvariant, d)
	}
}

// crash stops the process: what was in flight to it is lost, and so is
// everything in memory (Core, driver and its transfer, snapshots); the
// database stays.
func (h *host) crash() {
	h.down = true
	h.epoch++
	h.releaseSnapshots()
	h.core, h.driver, h.exec, h.kv, h.ledger, h.hook, h.raftLog, h.clients = nil, nil, nil, nil, nil, nil, nil, nil
}

// restart starts a new process on the database the replica kept.
func (h *host) restart() {
	h.w.active = h
	h.down = false
	if err := h.start(); err != nil {
		h.w.violate(KindInternal, fmt.Sprintf("restart: %v", err))
	}
}

// wipe crashes the replica, replaces its database with an empty one and
// restarts it: it rejoins as a fresh replica.
func (h *host) wipe() error {
	if !h.down {
		h.crash()
	}
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("replica %d: close wiped database: %w", h.id, err)
	}
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.db = db
	h.wipedEpoch = h.epoch
	h.restart()
	return nil
}

func (h *host) releaseSnapshots() {
	for _, s := range h.snaps {
		s.Release()
	}
	h.snaps = nil
}

// Keep is the driver's Snapshots: h serves its two latest snapshots.
func (h *host) Keep(s *execution.StateSnapshot) {
	h.snaps = append(h.snaps, s)
	if len(h.snaps) > 2 {
		h.snaps[0].Release()
		h.snaps = h.snaps[1:]
	}
}

// tick is one tick of node/raftnode/loop.go's event loop.
func (h *host) tick() {
	h.driver.Tick()
	if !h.w.stop {
		h.process()
	}
}

func (h *host) step(from uint32, m *raftpb.Message) {
	// A rejected message changes nothing; node/ only counts it.
	_ = h.driver.Step(from, m)
}

// submit handles a client request as node/raftnode/loop.go does.
func (h *host) submit(client int, req *wire.Request) {
	h.clients[client] = true
	if h.w.cfg.Plant == PlantStaleRead && h.kv != nil && !h.driver.Transferring() && isGet(req.GetOperation()) {
		// Planted bug: answer a read from local state, unordered.
		result := h.kv.KV.Execute(req.GetOperation())
		if req.GetReadOnly() {
			h.driver.ReadReply(raftmode.ReadReply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), Result: result})
			return
		}
		h.driver.Reply(execution.Reply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), Result: result})
		return
	}
	if req.GetReadOnly() {
		// ReadIndex at the leader, refused elsewhere, as node/raftnode does.
		h.driver.Read(req)
		return
	}
	// A refused request (too old, queue full) is dropped, as node/ does.
	_ = h.driver.Submit(req)
}

// process runs the driver's Process, as RaftNode's event loop does, and
// lets the checkers see the applied state.
func (h *host) process() {
	w := h.w
	if err := h.driver.Process(); err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d: %v", h.id, err))
		return
	}
	if !h.driver.Transferring() && h.core.WaitingForState() == nil {
		w.check.digestAt(h, h.exec.LastExecuted(), h.exec.StateDigest())
		if h.ledger != nil && h.exec.LastExecuted() != h.ledgerChecked {
			h.ledgerChecked = h.exec.LastExecuted()
			h.checkLedger("after processing")
		}
	}
	if st := h.core.Status(); st.IsLeader {
		w.leaderTerms[st.Term] = true
	}
	w.watchJoint(h) // last: it may crash h
}

// SendRaft is the driver's Network: it encodes m and sends it over the
// virtual network.
func (h *host) SendRaft(_ uint32, m *raftpb.Message) bool { return h.w.sendRaft(h, m) }

// Reply is the driver's Network: it sends a reply to its client if the
// client has a stream to this replica.
func (h *host) Reply(r *wire.Reply) {
	client := h.w.clientIndex(r.GetClientId())
	if client < 0 || !h.clients[client] {
		return
	}
	h.w.fresh.answered(h, r)
	h.w.sendReply(h, client, r)
}

// ReadReplies is the driver's Network: each answer goes as Reply sends it.
func (h *host) ReadReplies(rs []*wire.Reply) {
	for _, r := range rs {
		h.Reply(r)
	}
}

// Persisted is the driver's Observer: it counts the snapshots taken.
func (h *host) Persisted(out *raftmode.Output) {
	if out.Snapshot != nil {
		h.w.res.Snapshots++
	}
}
