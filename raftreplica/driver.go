package raftreplica

import (
	"fmt"
	"log/slog"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// Core is what the Driver uses of a raftmode.Core (which implements it);
// see raftmode.Core for the contracts of each method.
type Core interface {
	Tick()
	Step(from uint32, m *raftpb.Message) error
	Submit(req *wire.Request) (*execution.Reply, error)
	Read(req *wire.Request) error
	Process(early func(*raftmode.Early)) (raftmode.Output, error)
	ReportSnapshot(to uint32, ok bool)
	ReportUnreachable(to uint32)
	StateInstalled() error
	WaitingForState() *raftmode.StateNeed
	Term() uint64
	Leader() int
	// Epoch is the configuration epoch replies carry.
	Epoch() uint64
}

var _ Core = (*raftmode.Core)(nil)

// Application is the executor the core applies to, as the Driver needs
// it: its restore side for the fetcher and a snapshot of its current
// state (*execution.Executor implements it).
type Application interface {
	statetransfer.Restorer
	TakeSnapshot() (*execution.StateSnapshot, error)
}

var _ Application = (*execution.Executor)(nil)

// Network carries what the Driver sends. Its methods must not call back
// into the Driver.
type Network interface {
	// SendRaft sends m to replica to (m.To - 1) and reports whether the
	// transport took it (the peer is connected and its queue had room).
	SendRaft(to uint32, m *raftpb.Message) bool
	// SendStateRequest sends a state request to replica to.
	SendStateRequest(to uint32, req *wire.StateRequest)
	// Reply sends r to the client r.ClientId names, if that client has a
	// stream to this replica; otherwise it drops it.
	Reply(r *wire.Reply)
	// ReadReplies sends answers to read-only requests (marked read_only)
	// as Reply does; they are the answers of one step, so an
	// implementation may pack each client's into one frame. It must not
	// keep rs.
	ReadReplies(rs []*wire.Reply)
}

// Snapshots keeps the snapshots this replica serves to its peers.
type Snapshots interface {
	// Keep takes ownership of s: the implementation releases it when it
	// drops it. It must not block.
	Keep(s *execution.StateSnapshot)
}

// Observer receives the Driver's events, on the Driver's goroutine. Its
// methods must not call back into the Driver.
type Observer interface {
	// Persisted: Core.Process made out durable and applied it; nothing of
	// it has been sent yet.
	Persisted(out *raftmode.Output)
	// StateInstalled: the state at index, fetched from replica from, is
	// installed and the core accepted it.
	StateInstalled(from uint32, index uint64)
}

// Config configures a Driver.
type Config struct {
	// Self is this replica's index and N the number of replicas.
	Self uint32
	N    int
	// Core and App are required; App must be the executor Core applies
	// to.
	Core Core
	App  Application
	// Network and Snapshots are required.
	Network   Network
	Snapshots Snapshots
	// Observer is optional.
	Observer Observer
	// TransferObserver receives the fetcher's events; optional.
	TransferObserver statetransfer.Observer
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Driver drives one raftmode.Core; see the package documentation for the
// order it keeps. Not safe for concurrent use.
type Driver struct {
	cfg Config
	// fetch is the state transfer in progress: non-nil from the core's
	// need until the core accepts the state.
	fetch *statetransfer.Fetcher
	// unreached collects the replicas an early message could not be
	// queued for, reported to the core once its Process returned.
	unreached []uint32
}

// New returns a Driver. It panics if a required Config field is nil (a
// wiring bug).
func New(cfg Config) *Driver {
	if cfg.Core == nil || cfg.App == nil || cfg.Network == nil || cfg.Snapshots == nil {
		panic("raftreplica: Config.Core, App, Network and Snapshots are required")
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg}
}

// Start begins the replica's life on what its storage holds: it fetches
// the state a restarted core waits for, or else hands the current state to
// Snapshots. An error means the startup snapshot could not be taken (the
// replica can still run; it serves nothing until its next snapshot).
func (d *Driver) Start() error {
	if need := d.cfg.Core.WaitingForState(); need != nil {
		// A crash interrupted a restore, or the log starts after the
		// application state: fetch the state before anything else.
		d.startTransfer(*need)
		return nil
	}
	snap, err := d.cfg.App.TakeSnapshot()
	if err != nil {
		return fmt.Errorf("raftreplica: startup snapshot: %w", err)
	}
	d.cfg.Snapshots.Keep(snap)
	return nil
}

// Tick advances the core's and the fetcher's clocks by one tick.
func (d *Driver) Tick() {
	d.cfg.Core.Tick()
	if d.fetch != nil {
		d.fetch.Tick()
	}
}

// Step hands a raft message from replica from to the core; an error means
// the core rejected it (and nothing changed).
func (d *Driver) Step(from uint32, m *raftpb.Message) error {
	return d.cfg.Core.Step(from, m)
}

// Submit hands a client request to the core. If the core has its result
// already, the reply goes out at once. An error means the core refused the
// request (queue full, too old, too large, waiting for state).
func (d *Driver) Submit(req *wire.Request) error {
	reply, err := d.cfg.Core.Submit(req)
	if err != nil {
		return err
	}
	if reply != nil {
		d.Reply(*reply)
	}
	return nil
}

// Read hands a read-only request to the core (raftmode.Core.Read). A
// request the core refuses at once (a follower, too many pending reads,
// waiting for state) is answered at once with an error reply carrying the
// leader hint, so the client retries at the leader; the others are
// answered by a later Process.
func (d *Driver) Read(req *wire.Request) {
	if err := d.cfg.Core.Read(req); err != nil {
		d.ReadReply(raftmode.ReadReply{ClientID: req.GetClientId(), RequestNumber: req.GetRequestNumber(), Err: err})
	}
}

// Chunk hands a state chunk from replica from to the fetcher; a chunk when
// no fetch runs is ignored. When the chunk completes the fetch the core is
// told; an error means it refused the installed state, and the fetcher
// asks the next peer.
func (d *Driver) Chunk(from uint32, c *wire.StateChunk) error {
	if d.fetch == nil {
		return nil
	}
	index, done := d.fetch.Chunk(from, c)
	if !done {
		return nil
	}
	if err := d.cfg.Core.StateInstalled(); err != nil {
		d.fetch.Fail("install")
		return fmt.Errorf("raftreplica: state installed at %d: %w", index, err)
	}
	d.fetch = nil
	d.cfg.Observer.StateInstalled(from, index)
	return nil
}

// Process runs the core's Process and hands its output out in the
// package's order. An error means storage or execution failed and the
// replica must stop.
func (d *Driver) Process() error {
	core := d.cfg.Core
	out, err := core.Process(d.sendEarly)
	for _, to := range d.unreached {
		core.ReportUnreachable(to)
	}
	clear(d.unreached)
	d.unreached = d.unreached[:0]
	if err != nil {
		return fmt.Errorf("raftreplica: process: %w", err)
	}
	d.cfg.Observer.Persisted(&out)
	for _, m := range out.Messages {
		to := uint32(m.GetTo() - 1)
		sent := d.cfg.Network.SendRaft(to, m)
		if m.GetType() == raftpb.MessageType_MsgSnap {
			core.ReportSnapshot(to, sent)
		} else if !sent {
			core.ReportUnreachable(to)
		}
	}
	for _, r := range out.Replies {
		d.Reply(r)
	}
	d.sendReads(out.ReadReplies)
	if out.Snapshot != nil {
		d.cfg.Snapshots.Keep(out.Snapshot)
	}
	if out.NeedState != nil {
		d.startTransfer(*out.NeedState)
	}
	return nil
}

// sendEarly sends what the core lets leave before its Ready is persisted
// (raftmode.Core.Process): a leader's appends and heartbeats (a
// follower's heartbeat answers), then the replies of entries committed and
// persisted earlier and the answers of confirmed reads. A message the
// transport did not take is reported unreachable after Process returns,
// not during it: the core is between raft's Ready and Advance meanwhile.
func (d *Driver) sendEarly(e *raftmode.Early) {
	for _, m := range e.Messages {
		to := uint32(m.GetTo() - 1)
		if !d.cfg.Network.SendRaft(to, m) {
			d.unreached = append(d.unreached, to)
		}
	}
	for _, r := range e.Replies {
		d.Reply(r)
	}
	d.sendReads(e.Reads)
}

// Reply sends a result to its client through Network.Reply, with the
// core's term and leader hint.
func (d *Driver) Reply(r execution.Reply) {
	d.cfg.Network.Reply(&wire.Reply{
		View: d.cfg.Core.Term(), ClientId: r.ClientID, RequestNumber: r.RequestNumber,
		Replica: d.cfg.Self, Result: r.Result, LeaderHint: d.leaderHint(), Epoch: d.cfg.Core.Epoch(),
	})
}

// ReadReply sends the answer to one read-only request (sendReads).
func (d *Driver) ReadReply(r raftmode.ReadReply) { d.sendReads([]raftmode.ReadReply{r}) }

// sendReads sends the answers to read-only requests through
// Network.ReadReplies, each marked read_only, with the core's term and
// leader hint: its result, or its failure as the reply's error.
func (d *Driver) sendReads(rs []raftmode.ReadReply) {
	if len(rs) == 0 {
		return
	}
	view, hint, epoch := d.cfg.Core.Term(), d.leaderHint(), d.cfg.Core.Epoch()
	replies := make([]*wire.Reply, len(rs))
	for i, r := range rs {
		reply := &wire.Reply{
			View: view, ClientId: r.ClientID, RequestNumber: r.RequestNumber,
			Replica: d.cfg.Self, Result: r.Result, LeaderHint: hint, ReadOnly: true, Epoch: epoch,
		}
		if r.Err != nil {
			reply.Result, reply.Error = nil, r.Err.Error()
		}
		replies[i] = reply
	}
	d.cfg.Network.ReadReplies(replies)
}

// leaderHint is the leader's index + 1, 0 when unknown.
func (d *Driver) leaderHint() uint32 {
	if l := d.cfg.Core.Leader(); l >= 0 {
		return uint32(l) + 1
	}
	return 0
}

// Transferring reports whether a state transfer runs (from the core's
// need until it accepts the state).
func (d *Driver) Transferring() bool { return d.fetch != nil }

// Fetcher returns the state transfer in progress, or nil; for status
// reports only (the Driver drives it).
func (d *Driver) Fetcher() *statetransfer.Fetcher { return d.fetch }

// startTransfer fetches the state need asks for: a snapshot at need.Index
// or later, from one peer at a time, the leader that sent the raft
// snapshot first. Every replica snapshots at the same indexes, so any peer
// can serve one.
func (d *Driver) startTransfer(need raftmode.StateNeed) {
	if d.fetch == nil {
		d.fetch = statetransfer.New(statetransfer.Config{
			Restorer: d.cfg.App,
			Request:  d.cfg.Network.SendStateRequest,
			Logger:   d.cfg.Logger,
			Observer: d.cfg.TransferObserver,
			// Servers answer whole windows (statetransfer.ServeChunks).
			Window: statetransfer.DefaultWindow,
		})
	}
	d.fetch.Start(need.Target(d.cfg.N, d.cfg.Self))
	if !d.fetch.Active() {
		d.fetch = nil // no peer to ask (a single replica)
	}
}

type nopObserver struct{}

func (nopObserver) Persisted(*raftmode.Output)    {}
func (nopObserver) StateInstalled(uint32, uint64) {}
