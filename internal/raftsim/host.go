package raftsim

import (
	"fmt"
	"math/rand/v2"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
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
// keeps), and the executor, raft log and Core built from it (what a crash
// loses), plus the runtime's state transfer and snapshot server.
type host struct {
	w  *world
	id uint32

	db      *storage.DB
	app     *recordingApp
	exec    *execution.Executor
	raftLog *raftlog.Log
	core    *raftmode.Core

	// snaps are the snapshots this process serves, oldest first, at most
	// two (node/raft_transfer.go's serveRaftSnapshots).
	snaps    []*execution.StateSnapshot
	transfer *transfer
	// clients are the clients with a stream to this process: a replica
	// replies to a client only over the client's own stream.
	clients map[int]bool

	down bool
	// epoch counts incarnations; wipedEpoch is the first incarnation after
	// the latest wipe.
	epoch, wipedEpoch uint64
}

// start builds the executor, raft log and Core from what the database
// holds, as node.StartRaft does.
func (h *host) start() error {
	w := h.w
	kv, err := execution.NewKV(h.db.LevelDB())
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.app = &recordingApp{KV: kv, h: h, alterPuts: w.cfg.Plant == PlantAlterOp && h.id == 0}
	if h.exec, err = execution.NewExecutor(h.db, h.app, nil); err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	w.check.restarted(h)
	if h.raftLog, err = raftlog.Open(h.db); err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.app.exec, h.app.raftLog = h.exec, h.raftLog
	h.clients = map[int]bool{}
	h.transfer = nil
	h.core, err = raftmode.New(raftmode.Config{
		Index: h.id, N: w.n, Log: h.raftLog, Executor: h.exec,
		Rand:          rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64())),
		ElectionTicks: ElectionTicks, HeartbeatTicks: HeartbeatTicks,
		MaxBatchSize: w.tuning.maxBatchSize, MaxInflightMsgs: w.tuning.maxInflightMsgs,
		MaxSizePerMsg: w.tuning.maxSizePerMsg, SnapshotInterval: w.tuning.snapshotInterval,
		Logger: w.log.With("replica", h.id),
	})
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	if need := h.core.WaitingForState(); need != nil {
		// node.StartRaft starts no transfer here (Process never reports
		// this need): the simulator does, and counts these restarts.
		w.res.WaitingRestarts++
		h.startTransfer(*need)
		return nil
	}
	// Serve the state this replica starts with, as node.StartRaft does.
	snap, err := h.exec.TakeSnapshot()
	if err != nil {
		return fmt.Errorf("replica %d: startup snapshot: %w", h.id, err)
	}
	h.addSnapshot(snap)
	w.check.digestAt(h, h.exec.LastExecuted(), h.exec.StateDigest())
	return nil
}

// crash stops the process: what was in flight to it is lost, and so is
// everything in memory (Core, snapshots, transfer); the database stays.
func (h *host) crash() {
	h.down = true
	h.epoch++
	h.releaseSnapshots()
	h.core, h.exec, h.app, h.raftLog, h.transfer, h.clients = nil, nil, nil, nil, nil, nil
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

func (h *host) addSnapshot(s *execution.StateSnapshot) {
	h.snaps = append(h.snaps, s)
	if len(h.snaps) > 2 {
		h.snaps[0].Release()
		h.snaps = h.snaps[1:]
	}
}

// tick is one tick of node/raft_loop.go's event loop.
func (h *host) tick() {
	h.core.Tick()
	h.transferTick()
	if !h.w.stop {
		h.process()
	}
}

func (h *host) step(from uint32, m *raftpb.Message) {
	// A rejected message changes nothing; node/ only counts it.
	_ = h.core.Step(from, m)
}

// submit handles a client request as node/raft_loop.go does.
func (h *host) submit(client int, req *wire.Request) {
	h.clients[client] = true
	if h.w.cfg.Plant == PlantStaleRead && h.transfer == nil && isGet(req.GetOperation()) {
		// Planted bug: answer a read from local state, unordered.
		result := h.app.KV.Execute(req.GetOperation())
		h.reply(execution.Reply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), Result: result})
		return
	}
	reply, err := h.core.Submit(req)
	if err != nil {
		return // refused (too old, queue full): node/ drops it too
	}
	if reply != nil {
		h.reply(*reply)
	}
}

// process hands the Core's output to the network, as RaftNode.process
// does, and lets the checkers see the applied state.
func (h *host) process() {
	w := h.w
	out, err := h.core.Process()
	if err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d: process: %v", h.id, err))
		return
	}
	for _, m := range out.Messages {
		to := uint32(m.GetTo() - 1)
		sent := w.sendRaft(h, m)
		if m.GetType() == raftpb.MessageType_MsgSnap {
			h.core.ReportSnapshot(to, sent)
		} else if !sent {
			h.core.ReportUnreachable(to)
		}
	}
	for _, r := range out.Replies {
		h.reply(r)
	}
	if out.Snapshot != nil {
		w.res.Snapshots++
		h.addSnapshot(out.Snapshot)
	}
	if out.NeedState != nil {
		h.startTransfer(*out.NeedState)
	}
	if h.transfer == nil && h.core.WaitingForState() == nil {
		w.check.digestAt(h, h.exec.LastExecuted(), h.exec.StateDigest())
	}
	if st := h.core.Status(); st.IsLeader {
		w.leaderTerms[st.Term] = true
	}
}

// reply sends a result to its client if the client has a stream to this
// replica, with the leader hint RaftNode.reply adds.
func (h *host) reply(r execution.Reply) {
	client := h.w.clientIndex(r.ClientID)
	if client < 0 || !h.clients[client] {
		return
	}
	st := h.core.Status()
	hint := uint32(0)
	if st.Leader >= 0 {
		hint = uint32(st.Leader) + 1
	}
	h.w.sendReply(h, client, &wire.Reply{
		View: st.Term, ClientId: r.ClientID, RequestNumber: r.RequestNumber,
		Replica: h.id, Result: r.Result, LeaderHint: hint,
	})
}
