package raftreplica

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// trace is the one ordered record of what the fakes saw.
type trace struct{ events []string }

func (t *trace) add(format string, args ...any) {
	t.events = append(t.events, fmt.Sprintf(format, args...))
}

// fakeCore records the calls the Driver makes; Process returns out.
type fakeCore struct {
	t   *trace
	out raftmode.Output
	// early are the messages Process hands to its early callback before
	// it "persists".
	early      *raftmode.Early
	processErr error
	need       *raftmode.StateNeed
	installErr error
	submitted  *execution.Reply
	submitErr  error
	readErr    error
	term       uint64
	leader     int
	ticks      int
}

func (c *fakeCore) Tick() { c.ticks++ }
func (c *fakeCore) Step(from uint32, m *raftpb.Message) error {
	c.t.add("step %d %v", from, m.GetType())
	return nil
}
func (c *fakeCore) Submit(req *wire.Request) (*execution.Reply, error) {
	c.t.add("submit %d", req.GetRequestNumber())
	return c.submitted, c.submitErr
}
func (c *fakeCore) Read(req *wire.Request) error {
	c.t.add("read %d", req.GetRequestNumber())
	return c.readErr
}
func (c *fakeCore) Process(early func(*raftmode.Early)) (raftmode.Output, error) {
	c.t.add("process")
	if c.early != nil {
		early(c.early)
		c.early = nil
		c.t.add("persist")
	}
	out := c.out
	c.out = raftmode.Output{}
	return out, c.processErr
}
func (c *fakeCore) ReportSnapshot(to uint32, ok bool) { c.t.add("report-snapshot %d %v", to, ok) }
func (c *fakeCore) ReportUnreachable(to uint32)       { c.t.add("unreachable %d", to) }
func (c *fakeCore) StateInstalled() error {
	c.t.add("state-installed")
	if c.installErr == nil {
		c.need = nil
	}
	return c.installErr
}
func (c *fakeCore) WaitingForState() *raftmode.StateNeed { return c.need }
func (c *fakeCore) Term() uint64                         { return c.term }
func (c *fakeCore) Leader() int                          { return c.leader }
func (c *fakeCore) Epoch() uint64                        { return 0 }

// fakeApp restores into nothing but its last executed index.
type fakeApp struct {
	t        *trace
	executed uint64
	pending  uint64
}

func (a *fakeApp) RestoreBegin() error { a.t.add("restore-begin"); return nil }
func (a *fakeApp) RestoreChunk([]*wire.KeyValue) error {
	return nil
}
func (a *fakeApp) RestoreFinish() ([32]byte, error) {
	a.executed = a.pending
	return [32]byte{}, nil
}
func (a *fakeApp) RestoreFinishExpect([32]byte) ([32]byte, error) { return a.RestoreFinish() }
func (a *fakeApp) RestoreAbort() error                            { a.t.add("restore-abort"); return nil }
func (a *fakeApp) LastExecuted() uint64                           { return a.executed }
func (a *fakeApp) TakeSnapshot() (*execution.StateSnapshot, error) {
	a.t.add("take-snapshot")
	return new(execution.StateSnapshot), nil
}

// fakePorts is the Network, Snapshots and Observer.
type fakePorts struct {
	t *trace
	// unreachable are the replicas SendRaft fails to reach.
	unreachable map[uint32]bool
	replies     []*wire.Reply
}

func (p *fakePorts) SendRaft(to uint32, m *raftpb.Message) bool {
	p.t.add("send %v to %d", m.GetType(), to)
	return !p.unreachable[to]
}
func (p *fakePorts) SendStateRequest(to uint32, req *wire.StateRequest) {
	p.t.add("state-request to %d at %d", to, req.GetSequence())
}
func (p *fakePorts) Reply(r *wire.Reply) {
	p.t.add("reply %d", r.GetRequestNumber())
	p.replies = append(p.replies, r)
}
func (p *fakePorts) ReadReplies(rs []*wire.Reply) {
	for _, r := range rs {
		p.Reply(r)
	}
}
func (p *fakePorts) Keep(*execution.StateSnapshot)  { p.t.add("keep") }
func (p *fakePorts) Persisted(out *raftmode.Output) { p.t.add("persisted %d", len(out.Messages)) }
func (p *fakePorts) StateInstalled(from uint32, index uint64) {
	p.t.add("observed-installed from %d at %d", from, index)
}

type fixture struct {
	t     *trace
	core  *fakeCore
	app   *fakeApp
	ports *fakePorts
	d     *Driver
}

// newFixture builds a Driver for replica 0 of 3.
func newFixture() *fixture {
	t := &trace{}
	f := &fixture{t: t, core: &fakeCore{t: t, leader: -1}, app: &fakeApp{t: t}, ports: &fakePorts{t: t, unreachable: map[uint32]bool{}}}
	f.d = New(Config{Self: 0, N: 3, Core: f.core, App: f.app, Network: f.ports, Snapshots: f.ports, Observer: f.ports})
	return f
}

func (f *fixture) expect(tb testing.TB, want ...string) {
	tb.Helper()
	if !slices.Equal(f.t.events, want) {
		tb.Fatalf("events:\n got %q\nwant %q", f.t.events, want)
	}
	f.t.events = nil
}

func msg(typ raftpb.MessageType, to uint64) *raftpb.Message {
	return &raftpb.Message{Type: typ.Enum(), To: &to}
}

// TestProcessOrder: the output of Process goes out only after the core
// persisted it, each message's fate is reported back, and replies,
// snapshots and the state need follow the messages.
func TestProcessOrder(t *testing.T) {
	f := newFixture()
	f.ports.unreachable[1] = true
	f.core.out = raftmode.Output{
		Messages: []*raftpb.Message{
			msg(raftpb.MessageType_MsgApp, 2), // replica 1, unreachable
			msg(raftpb.MessageType_MsgSnap, 3),
			msg(raftpb.MessageType_MsgSnap, 2), // replica 1, unreachable
			msg(raftpb.MessageType_MsgHeartbeat, 3),
		},
		Replies:   []execution.Reply{{RequestNumber: 7}},
		Snapshot:  new(execution.StateSnapshot),
		NeedState: &raftmode.StateNeed{Index: 5, From: 2},
	}
	if err := f.d.Process(); err != nil {
		t.Fatal(err)
	}
	f.expect(t,
		"process", "persisted 4",
		"send MsgApp to 1", "unreachable 1",
		"send MsgSnap to 2", "report-snapshot 2 true",
		"send MsgSnap to 1", "report-snapshot 1 false",
		"send MsgHeartbeat to 2",
		"reply 7", "keep",
		"restore-begin", "state-request to 2 at 5",
	)
	if !f.d.Transferring() {
		t.Fatal("NeedState did not start a transfer")
	}
}

// TestProcessEarlyMessages: what the core hands to the early callback
// goes out at once, messages then replies, before the core persists, and a message the
// transport did not take is reported unreachable only after the core's
// Process returned (it is between raft's Ready and Advance meanwhile).
func TestProcessEarlyMessages(t *testing.T) {
	f := newFixture()
	f.ports.unreachable[1] = true
	f.core.early = &raftmode.Early{
		Messages: []*raftpb.Message{msg(raftpb.MessageType_MsgApp, 2), msg(raftpb.MessageType_MsgApp, 3)},
		Replies:  []execution.Reply{{RequestNumber: 4}},
	}
	f.core.out = raftmode.Output{Messages: []*raftpb.Message{msg(raftpb.MessageType_MsgAppResp, 3)}}
	if err := f.d.Process(); err != nil {
		t.Fatal(err)
	}
	f.expect(t,
		"process", "send MsgApp to 1", "send MsgApp to 2", "reply 4", "persist",
		"unreachable 1",
		"persisted 1", "send MsgAppResp to 2",
	)
	// Reported once, not again by the next Process.
	if err := f.d.Process(); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "process", "persisted 0")
}

// TestProcessErrorSendsNothing: when the core fails to persist, nothing of
// its output leaves.
func TestProcessErrorSendsNothing(t *testing.T) {
	f := newFixture()
	f.core.processErr = errors.New("disk gone")
	f.core.out = raftmode.Output{Messages: []*raftpb.Message{msg(raftpb.MessageType_MsgApp, 2)}, Replies: []execution.Reply{{RequestNumber: 1}}}
	if err := f.d.Process(); !errors.Is(err, f.core.processErr) {
		t.Fatalf("Process = %v, want the core's error", err)
	}
	f.expect(t, "process")
}

// TestStateTransferToInstalled: a NeedState starts the fetcher at the
// leader that sent the snapshot, and the chunk that completes the fetch
// tells the core, then the observer, and ends the transfer.
func TestStateTransferToInstalled(t *testing.T) {
	f := newFixture()
	f.core.need = &raftmode.StateNeed{Index: 5, From: 2}
	f.core.out = raftmode.Output{NeedState: f.core.need}
	if err := f.d.Process(); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "process", "persisted 0", "restore-begin", "state-request to 2 at 5")
	f.app.pending = 6
	if err := f.d.Chunk(1, &wire.StateChunk{Sequence: 6}); err != nil {
		t.Fatal(err)
	}
	f.expect(t) // not the peer asked: ignored
	if err := f.d.Chunk(2, &wire.StateChunk{Sequence: 6}); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "state-installed", "observed-installed from 2 at 6")
	if f.d.Transferring() {
		t.Fatal("transfer still running after the core accepted the state")
	}
	if err := f.d.Chunk(2, &wire.StateChunk{Sequence: 6}); err != nil {
		t.Fatal(err)
	}
	f.expect(t) // no transfer: ignored
}

// TestInstallRefusedAsksNextPeer: if the core refuses the installed state,
// the fetcher wipes it and asks the next peer.
func TestInstallRefusedAsksNextPeer(t *testing.T) {
	f := newFixture()
	f.core.need = &raftmode.StateNeed{Index: 5, From: 2}
	f.core.out = raftmode.Output{NeedState: f.core.need}
	_ = f.d.Process()
	f.t.events = nil
	f.core.installErr = errors.New("too old")
	f.app.pending = 5
	if err := f.d.Chunk(2, &wire.StateChunk{Sequence: 5}); !errors.Is(err, f.core.installErr) {
		t.Fatalf("Chunk = %v, want the core's refusal", err)
	}
	f.expect(t, "state-installed", "restore-begin", "state-request to 1 at 5")
	if !f.d.Transferring() {
		t.Fatal("transfer ended although the core refused the state")
	}
}

// TestStart: a core waiting for state fetches it at once; otherwise the
// current state is kept for serving.
func TestStart(t *testing.T) {
	f := newFixture()
	f.core.need = &raftmode.StateNeed{Index: 9, From: -1}
	if err := f.d.Start(); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "restore-begin", "state-request to 1 at 9")

	f = newFixture()
	if err := f.d.Start(); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "take-snapshot", "keep")
	if f.d.Transferring() {
		t.Fatal("transfer without a need")
	}
}

// TestSubmit: the result of an applied request is replied at once, with
// the term and leader hint; a refusal is returned and sends nothing.
func TestSubmit(t *testing.T) {
	f := newFixture()
	f.core.term, f.core.leader = 4, 2
	f.core.submitted = &execution.Reply{ClientID: []byte("c"), RequestNumber: 3, Result: []byte("ok")}
	if err := f.d.Submit(&wire.Request{RequestNumber: 3}); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "submit 3", "reply 3")
	r := f.ports.replies[0]
	if r.GetView() != 4 || r.GetLeaderHint() != 3 || r.GetReplica() != 0 || string(r.GetResult()) != "ok" {
		t.Fatalf("reply %v", r)
	}

	f.core.submitted, f.core.submitErr = nil, raftmode.ErrQueueFull
	if err := f.d.Submit(&wire.Request{RequestNumber: 4}); !errors.Is(err, raftmode.ErrQueueFull) {
		t.Fatalf("Submit = %v", err)
	}
	f.expect(t, "submit 4")

	f.core.submitErr, f.core.leader = nil, -1
	f.core.submitted = &execution.Reply{RequestNumber: 5}
	_ = f.d.Submit(&wire.Request{RequestNumber: 5})
	if hint := f.ports.replies[1].GetLeaderHint(); hint != 0 {
		t.Fatalf("leader hint %d with no leader", hint)
	}
}

// TestTickDrivesFetcher: Tick ticks the core and the fetcher, which gives
// up on a silent peer after its idle ticks (and asks the next one from
// where the restore stands, without wiping it).
func TestTickDrivesFetcher(t *testing.T) {
	f := newFixture()
	f.core.need = &raftmode.StateNeed{Index: 5, From: 2}
	_ = f.d.Start()
	f.t.events = nil
	for range statetransfer.DefaultIdleTicks {
		f.d.Tick()
	}
	if f.core.ticks != statetransfer.DefaultIdleTicks {
		t.Fatalf("core ticked %d times", f.core.ticks)
	}
	f.expect(t, "state-request to 1 at 5")
}

// TestReadRepliesAreMarkedAndCarryTheLeaderHint: a read the core refuses
// is answered at once with an error reply naming the leader; the core's
// read answers go out after the replies of applied requests, marked
// read_only.
func TestReadRepliesAreMarkedAndCarryTheLeaderHint(t *testing.T) {
	f := newFixture()
	f.core.leader, f.core.term = 2, 4
	f.core.readErr = raftmode.ErrNotLeader
	f.d.Read(&wire.Request{RequestNumber: 3, ReadOnly: true})
	f.expect(t, "read 3", "reply 3")
	r := f.ports.replies[0]
	if !r.GetReadOnly() || r.GetError() != raftmode.ErrNotLeader.Error() || r.GetLeaderHint() != 3 || r.GetView() != 4 {
		t.Fatalf("refused read's reply %v: want read_only, error, leader hint 3, view 4", r)
	}
	f.core.readErr = nil
	f.d.Read(&wire.Request{RequestNumber: 4, ReadOnly: true})
	f.expect(t, "read 4")
	f.core.out = raftmode.Output{
		Replies:     []execution.Reply{{RequestNumber: 5}},
		ReadReplies: []raftmode.ReadReply{{RequestNumber: 4, Result: []byte("v")}, {RequestNumber: 6, Result: []byte("x"), Err: raftmode.ErrReadAborted}},
	}
	if err := f.d.Process(); err != nil {
		t.Fatal(err)
	}
	f.expect(t, "process", "persisted 0", "reply 5", "reply 4", "reply 6")
	ok, failed := f.ports.replies[2], f.ports.replies[3]
	if !ok.GetReadOnly() || string(ok.GetResult()) != "v" || ok.GetError() != "" {
		t.Fatalf("read answer %v: want read_only result v", ok)
	}
	if !failed.GetReadOnly() || failed.GetResult() != nil || failed.GetError() != raftmode.ErrReadAborted.Error() {
		t.Fatalf("failed read's reply %v: want read_only error without a result", failed)
	}
}
