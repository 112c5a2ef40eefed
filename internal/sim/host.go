package sim

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

func unmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

// host is one simulated replica process: the protocol core, its storage
// (what a restart recovers) and its executor on an in-memory goleveldb.
type host struct {
	w  *world
	id uint32
	// twin is 0, or 1 and 2 for the two copies of a Twins replica; side
	// (nil for a normal replica) is the set of replicas a twin talks to.
	twin int
	side map[uint32]bool
	// filter, when set, makes the replica Byzantine.
	filter  outFilter
	correct bool
	cfg     protocol.Config

	core *protocol.Replica
	db   *storage.DB
	exec *execution.Executor

	// What storage holds: the persisted view, the protocol log above the
	// stable checkpoint and the stable checkpoint's certificate.
	view uint64
	// viewActive: whether the persisted view had been entered (a restart
	// resumes a view change otherwise).
	viewActive bool
	log        []protocol.LogEntry
	stable     *checkpoint.Certificate
	// snaps are state snapshots taken at checkpoints (in memory: a crash
	// loses them), served to replicas that transfer state.
	snaps map[uint64]*execution.StateSnapshot

	down  bool
	epoch uint64
	// tornArmedAt, when positive, is the tick the schedule chose to crash
	// this replica in the middle of its next Ready that sends messages
	// before persisting (see drain).
	tornArmedAt int64
	// behind is the checkpoint a state transfer must install.
	behind *checkpoint.Certificate
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

// start creates the core and the executor; with restore, from what
// storage holds, as after a crash.
func (h *host) start(restore bool) error {
	core, err := protocol.New(h.cfg)
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	kv, err := execution.NewKV(h.db.LevelDB())
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	exec, err := execution.NewExecutor(h.db, kv, nil)
	if err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.core, h.exec = core, exec
	h.snaps = make(map[uint64]*execution.StateSnapshot)
	h.behind = nil
	if !restore {
		return nil
	}
	rec := protocol.Recovered{View: h.view, ViewChanging: !h.viewActive, Stable: h.stable, Executed: exec.LastExecuted()}
	for _, e := range h.log {
		if e.Certificate != nil {
			pc, err := h.w.verifier.PreparedCertificate(e.Certificate)
			if err != nil {
				return fmt.Errorf("replica %d: recover prepared certificate at %d: %w", h.id, e.Sequence, err)
			}
			rec.Prepared = append(rec.Prepared, pc)
			continue
		}
		frame, err := protocol.EncodeFrame(e.Signed, e.Batch)
		if err != nil {
			return fmt.Errorf("replica %d: recover: %w", h.id, err)
		}
		v := h.w.verifyFrame(frame)
		if v.err != nil {
			return fmt.Errorf("replica %d: recover log entry at %d: %w", h.id, e.Sequence, v.err)
		}
		rec.Log = append(rec.Log, v.vm)
	}
	if err := core.Restore(rec); err != nil {
		return fmt.Errorf("replica %d: %w", h.id, err)
	}
	h.drain()
	return nil
}

// crash stops the replica: messages in flight to it are lost, in-memory
// state (the core, snapshots) is gone; the database stays.
func (h *host) crash() {
	h.down = true
	h.tornArmedAt = 0
	h.behind = nil
	h.epoch++
	for _, s := range h.snaps {
		s.Release()
	}
	h.snaps = nil
	h.core, h.exec = nil, nil
}

func (h *host) restart() {
	h.down = false
	if err := h.start(true); err != nil {
		h.w.violate(KindInternal, fmt.Sprintf("restart: %v", err))
	}
}

func (h *host) tick() {
	h.core.Tick()
	h.drain()
	if inj, ok := h.filter.(injector); ok && !h.w.stop {
		for _, o := range inj.Inject(uint64(h.w.now), h.core.Status()) {
			h.w.sendReplica(h, o, 0)
		}
	}
	if h.behind != nil {
		h.w.transfer(h)
	}
}

func (h *host) step(vm protocol.VerifiedMessage) {
	_ = h.core.Step(vm) // a dropped input changes nothing; the reason is the core's business
	h.drain()
}

// submit handles a verified client request as node/ does: a request that
// executed gets its cached reply, one too old is dropped, others go to
// the core.
func (h *host) submit(client int, req protocol.ClientRequest) {
	r := req.Request
	switch h.exec.Status(r.ClientId, r.RequestNumber) {
	case execution.RequestExecuted:
		result, _ := h.exec.CachedReply(r.ClientId, r.RequestNumber)
		h.reply(client, r.ClientId, r.RequestNumber, result)
		return
	case execution.RequestTooOld:
		return
	}
	_ = h.core.Submit(req)
	h.drain()
}

func (h *host) reply(client int, clientID []byte, number uint64, result []byte) {
	if client < 0 {
		return // not one of the simulated clients (a Byzantine replica's own)
	}
	r := &wire.Reply{View: h.core.View(), ClientId: clientID, RequestNumber: number, Replica: h.id, Result: result}
	if h.filter != nil && !h.filter.Reply(r) {
		return
	}
	h.w.sendReply(h.id, client, r)
}

// pruneRequests lets the core forget requests the executor already ran,
// as node/ does at stable checkpoints and after a state transfer.
func (h *host) pruneRequests() {
	h.core.PruneRequests(func(clientID []byte, number uint64) bool {
		return h.exec.Status(clientID, number) != execution.RequestNew
	})
}

// drain carries out the core's actions in node/'s order: persist the
// view, send what may go before the log is persisted (the primary's
// PRE-PREPAREs), persist the log, send the rest, execute, then
// garbage-collect and note a state transfer. A replica the schedule armed
// for a torn crash crashes right after the early sends, before the log
// is persisted, the moment a real replica's crash can hit between them.
func (h *host) drain() {
	for h.core.HasReady() && !h.w.stop {
		rd := h.core.Ready()
		if rd.View != nil {
			h.view, h.viewActive = *rd.View, rd.ViewActive
		}
		early := false
		for _, out := range rd.Messages {
			if out.BeforePersist {
				h.send(out)
				early = true
			}
		}
		if early && h.tornArmedAt > 0 {
			h.w.sched.tornCrash(h.w, h)
			return
		}
		h.log = append(h.log, rd.Persist...)
		for _, out := range rd.Messages {
			if !out.BeforePersist {
				h.send(out)
			}
		}
		for _, b := range rd.Committed {
			if err := h.execute(b); err != nil {
				h.w.violate(KindInternal, fmt.Sprintf("replica %d%s: %v", h.id, h.label(), err))
				return
			}
		}
		if cp := rd.StableCheckpoint; cp != nil {
			h.stable = cp
			h.pruneRequests()
			kept := h.log[:0]
			for _, e := range h.log {
				if e.Sequence > cp.Sequence {
					kept = append(kept, e)
				}
			}
			clear(h.log[len(kept):])
			h.log = kept
			for seq, s := range h.snaps {
				if seq < cp.Sequence {
					s.Release()
					delete(h.snaps, seq)
				}
			}
		}
		if rd.Behind != nil {
			h.behind = rd.Behind
		}
	}
}

func (h *host) send(out protocol.Outbound) {
	if h.correct {
		if d := h.w.votes.check(h.id, out); d != "" {
			h.w.violate(KindEquivocation, d)
			return
		}
	}
	outs := []protocol.Outbound{out}
	var extra int64
	if h.filter != nil {
		if d, ok := h.filter.(delayer); ok {
			extra = d.extraDelay(out)
		}
		outs = h.filter.Outbound(out)
	}
	held, _ := h.filter.(tickDelayer)
	for _, o := range outs {
		d := extra
		if held != nil {
			d += int64(held.Delay(o))
		}
		h.w.sendReplica(h, o, d)
	}
}

// execute applies one committed batch: the checkers see it first (so a
// disagreement is caught at the step it happens), then the executor runs
// it, replies go out, and a checkpoint sequence is snapshotted and its
// digest handed to the core.
func (h *host) execute(b protocol.CommittedBatch) error {
	reqs := make([]execution.Request, len(b.Requests))
	for i, r := range b.Requests {
		reqs[i] = execution.Request{ClientID: r.ClientId, RequestNumber: r.RequestNumber, Operation: r.Operation}
	}
	if h.correct {
		h.w.check.executed(h, b)
		if h.w.stop {
			return nil
		}
	}
	replies, err := h.exec.Apply(b.Sequence, reqs)
	if err != nil {
		return fmt.Errorf("apply %d: %w", b.Sequence, err)
	}
	for _, r := range replies {
		h.reply(h.w.clientIndex(r.ClientID), r.ClientID, r.RequestNumber, r.Result)
	}
	if b.Sequence%CheckpointInterval == 0 {
		if err := h.checkpoint(b.Sequence); err != nil {
			return err
		}
	}
	return nil
}

func (h *host) checkpoint(seq uint64) error {
	snap, err := h.exec.TakeSnapshot()
	if err != nil {
		return fmt.Errorf("snapshot at %d: %w", seq, err)
	}
	if old := h.snaps[seq]; old != nil {
		old.Release()
	}
	h.snaps[seq] = snap
	if err := h.core.CheckpointExecuted(seq, snap.Digest()); err != nil {
		// node/ only logs this too (for example after a restart below
		// the stable checkpoint).
		h.w.log.Debug("checkpoint", "replica", h.id, "sequence", seq, "err", err)
	}
	return nil
}

// signerFor returns replica i's signer.
func (w *world) signerFor(i uint32) *crypto.Signer { return crypto.NewSigner(w.keys[i], clusterID) }
