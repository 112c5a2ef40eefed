package statetransfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pbftnode/pbftnode/wire"
)

// DefaultIdleTicks is how many ticks a Fetcher waits for an expected chunk
// before it asks the next peer, in both consensus modes (3 s at the
// runtimes' 10 ms tick; long enough for a chunk the server's per-peer
// budget defers).
const DefaultIdleTicks = 300

// DefaultBackoffTicks is how long a Fetcher waits before asking again once
// every peer in turn gave up (an Unavailable answer or a timeout) without
// a chunk restored in between; each further round doubles it, up to
// DefaultMaxBackoffTicks (100 ms and 2 s at the runtimes' 10 ms tick).
const (
	DefaultBackoffTicks    = 10
	DefaultMaxBackoffTicks = 200
)

// MaxChunksPerRequest bounds StateRequest.Chunks: a server answers one
// request with at most this many chunks (each within its per-peer byte
// budget), and a Fetcher's Config.Window is clamped to it. With the
// runtimes' 1 MiB chunks it is 8 MiB in flight per transfer.
const MaxChunksPerRequest = 8

// DefaultWindow is the runtimes' Config.Window (both modes): one round
// trip fetches MaxChunksPerRequest chunks instead of one.
const DefaultWindow = MaxChunksPerRequest

// errStateIndex: the restored state is not at the snapshot sequence served.
var errStateIndex = errors.New("restored state is not at the served snapshot sequence")

// Restorer is the executor's restore side (*execution.Executor implements
// it; see its methods for the contracts). The Fetcher relies on
// RestoreBegin starting over during a restore (or after one finished):
// nothing the new restore does not install survives it. It calls
// RestoreAbort only to leave an empty state (Stop).
type Restorer interface {
	RestoreBegin() error
	RestoreChunk(entries []*wire.KeyValue) error
	RestoreFinish() ([32]byte, error)
	RestoreFinishExpect(digest [32]byte) ([32]byte, error)
	RestoreAbort() error
	LastExecuted() uint64
}

// Resumer is a Restorer whose restore survives a crash
// (*execution.Executor implements it): RestoreBeginTagged is RestoreBegin
// that durably names the restore with tag, and after a restart
// RestoreResume continues the interrupted restore named tag from the key
// it returns (false: there is none; the Fetcher then begins afresh). A
// Fetcher tags only an Exact target with a digest, by its sequence and
// digest, so the final digest check covers what was kept.
type Resumer interface {
	RestoreBeginTagged(tag []byte) error
	RestoreResume(tag []byte) (startKey []byte, ok bool)
}

// Target is the state a fetch must install.
type Target struct {
	// Sequence is the least acceptable snapshot sequence; with Exact the
	// only one.
	Sequence uint64
	// Exact: only a snapshot at exactly Sequence will do (PBFT: the
	// certified checkpoint). Without it (Raft) the first chunk fixes the
	// sequence fetched, Sequence or above.
	Exact bool
	// Digest is the state digest at Sequence, checked when HasDigest and
	// the fetched snapshot is at Sequence.
	Digest    [32]byte
	HasDigest bool
	// Peers are whom to ask, in turn; they must not include the fetching
	// replica itself (see Ring).
	Peers []uint32
	// First is the index into Peers of the peer to ask first (taken
	// modulo len(Peers)).
	First int
}

// Observer receives the Fetcher's events, for metrics. Its methods are
// called on the Fetcher's goroutine and must not call back into it.
type Observer interface {
	// Started: a fetch of t began (or was retargeted to t).
	Started(t Target)
	// Rejected: a chunk was ignored ("unexpected") or a peer given up on
	// (the reason: timeout, unavailable, too_old, changed, bad_chunk,
	// digest_mismatch, or the one passed to Fail).
	Rejected(reason string)
	// Received: a chunk of entries (bytes of keys and values) was restored.
	Received(entries, bytes int)
	// Installed: the state at seq (bytes of keys and values) is restored
	// and checked.
	Installed(seq uint64, bytes int)
}

// Config configures a Fetcher.
type Config struct {
	// IdleTicks is how many ticks without an expected chunk make the
	// Fetcher ask the next peer; 0 means DefaultIdleTicks.
	IdleTicks int
	// BackoffTicks and MaxBackoffTicks bound the wait before asking again
	// after a round of peers that all gave up (see DefaultBackoffTicks);
	// 0 means the default.
	BackoffTicks, MaxBackoffTicks int
	// Window is how many consecutive chunks one request asks for
	// (StateRequest.Chunks), at most MaxChunksPerRequest; 0 means 1. The
	// Fetcher asks for the next window once the last chunk of the one
	// before is restored, so a transfer takes one round trip per Window
	// chunks instead of one per chunk. Every server must answer a request
	// with that many chunks (ServeChunks, or Rest in a loop), or the
	// Fetcher waits for the missing ones until IdleTicks pass.
	Window int
	// KeepTarget: Start does not retarget a fetch that is making progress
	// (see Keeps); the caller retargets once Stalled, e.g. when the
	// servers released the target. Without it any higher target
	// retargets at once.
	KeepTarget bool
	// Restorer installs the fetched state. Required.
	Restorer Restorer
	// Request sends req to replica to. Required. It must not call back into
	// the Fetcher (an answer arrives later through Chunk).
	Request func(to uint32, req *wire.StateRequest)
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Observer is optional.
	Observer Observer
}

// Fetcher is one state transfer at a time. It is not safe for concurrent
// use; see the package documentation for its contracts.
type Fetcher struct {
	cfg Config

	target  Target
	started bool // a target is held: fetching, or done and open to Fail
	active  bool // fetching
	current int  // index into target.Peers
	// index is the snapshot sequence being fetched: target.Sequence with
	// Exact, else 0 until the first chunk fixes it.
	index   uint64
	nextKey []byte
	idle    int
	bytes   int
	// due is how many chunks of the last request's window have not
	// arrived; the next request goes out when it reaches 0.
	due int
	// early holds chunks of the current window from the current peer that
	// arrived before the one they follow (the runtime verifies frames on
	// several workers, which may reorder them), by start key; at most
	// due-1 of them.
	early map[string]*wire.StateChunk
	begun bool // RestoreBegin was called and no abort or finish ended it
	// failures counts the peers given up on since the last chunk restored
	// (or Start); a whole round of them makes the next request wait.
	failures int
	// wait is the ticks left before the next request is sent (backoff);
	// while it runs, no chunk is expected.
	wait int
	// strict: the restore never continues with another peer's chunks. Set
	// once a restore assembled from several peers failed its final check
	// (or the core refused it), so that one honest peer alone completes
	// the next; cleared by Start.
	strict bool
}

// New returns an idle Fetcher. It panics if Restorer or Request is nil
// (a wiring bug).
func New(cfg Config) *Fetcher {
	if cfg.Restorer == nil || cfg.Request == nil {
		panic("statetransfer: Config.Restorer and Config.Request are required")
	}
	if cfg.IdleTicks <= 0 {
		cfg.IdleTicks = DefaultIdleTicks
	}
	if cfg.BackoffTicks <= 0 {
		cfg.BackoffTicks = DefaultBackoffTicks
	}
	if cfg.MaxBackoffTicks < cfg.BackoffTicks {
		cfg.MaxBackoffTicks = max(DefaultMaxBackoffTicks, cfg.BackoffTicks)
	}
	cfg.Window = min(max(cfg.Window, 1), MaxChunksPerRequest)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Fetcher{cfg: cfg}
}

// Start begins fetching t, or retargets a fetch in progress to t unless
// Keeps(t); it reports whether it (re)started. A Target without peers is
// logged and ignored. A retarget starts the restore over: a snapshot at
// another sequence has other content, and no chunk of it can be checked
// on its own (only the whole state's digest is certified).
func (f *Fetcher) Start(t Target) bool {
	if f.Keeps(t) {
		return false
	}
	if len(t.Peers) == 0 {
		f.cfg.Logger.Error("state transfer: no peer to ask", "sequence", t.Sequence)
		return false
	}
	t.Peers = append([]uint32(nil), t.Peers...)
	f.target, f.started, f.active = t, true, true
	f.failures, f.wait, f.strict = 0, 0, false
	f.current = t.First % len(t.Peers)
	if f.current < 0 {
		f.current += len(t.Peers)
	}
	f.cfg.Observer.Started(t)
	f.cfg.Logger.Info("state transfer: starting", "sequence", t.Sequence, "exact", t.Exact,
		"executed", f.cfg.Restorer.LastExecuted(), "peer", t.Peers[f.current])
	if !f.resume() {
		f.restart()
	}
	return true
}

// Keeps reports whether Start(t) would leave the fetch in progress as it
// is: t is not above its target, or (Config.KeepTarget) the fetch is not
// Stalled. Keeping the target while it is served lets a transfer longer
// than one checkpoint interval finish instead of being wiped by every
// newer stable checkpoint; the caller fetches what follows afterwards.
func (f *Fetcher) Keeps(t Target) bool {
	if !f.active {
		return false
	}
	return t.Sequence <= f.target.Sequence || (f.cfg.KeepTarget && !f.Stalled())
}

// Stalled reports whether a fetch is in progress and every one of its
// peers in turn gave up (timed out, answered Unavailable or was refused)
// since the last chunk restored: none of them serves the target now.
func (f *Fetcher) Stalled() bool {
	return f.active && f.failures >= len(f.target.Peers)
}

// tag names the target for a Resumer: its sequence and digest; nil when
// the target is not exact with a digest (then nothing is resumed).
func (f *Fetcher) tag() []byte {
	if !f.target.Exact || !f.target.HasDigest {
		return nil
	}
	return binary.BigEndian.AppendUint64(bytes.Clone(f.target.Digest[:]), f.target.Sequence)
}

// resume continues a restore of this target that a crash interrupted, if
// the Restorer kept one; it reports whether it did.
func (f *Fetcher) resume() bool {
	resumer, ok := f.cfg.Restorer.(Resumer)
	tag := f.tag()
	if !ok || tag == nil || f.begun {
		return false
	}
	key, ok := resumer.RestoreResume(tag)
	if !ok {
		return false
	}
	f.begun, f.index, f.nextKey, f.idle, f.bytes = true, f.target.Sequence, key, 0, 0
	f.cfg.Logger.Info("state transfer: resuming an interrupted restore", "sequence", f.index, "key", key)
	f.request()
	return true
}

// Active reports whether a fetch is in progress.
func (f *Fetcher) Active() bool { return f.active }

// Target returns the target of the fetch in progress, or of the last one
// done (open to Fail); ok is false when Stop or nothing came before.
func (f *Fetcher) Target() (t Target, ok bool) { return f.target, f.started }

// Peer returns the peer being asked (meaningful while Active).
func (f *Fetcher) Peer() uint32 {
	if !f.started {
		return 0
	}
	return f.target.Peers[f.current]
}

// String describes the fetch for diagnostics.
func (f *Fetcher) String() string {
	if !f.started {
		return "no fetch"
	}
	return fmt.Sprintf("fetch of %d (exact %v, active %v) from peer %d at sequence %d, key %q, idle %d, failures %d, backoff %d",
		f.target.Sequence, f.target.Exact, f.active, f.Peer(), f.index, f.nextKey, f.idle, f.failures, f.wait)
}

// Tick counts one tick without the expected chunk; after IdleTicks of them
// the Fetcher asks the next peer. During a backoff it counts the wait down
// instead and sends the request when it ends.
func (f *Fetcher) Tick() {
	if !f.active {
		return
	}
	if f.wait > 0 {
		if f.wait--; f.wait == 0 {
			f.request()
		}
		return
	}
	if f.idle++; f.idle >= f.cfg.IdleTicks {
		f.next("timeout")
	}
}

// Fail gives up on the peer that served the state just installed (the
// core refused it, reason says why), starts the restore over, and asks
// the next peer; the next restore takes every chunk from one peer. It
// does nothing after Stop or before Start.
func (f *Fetcher) Fail(reason string) {
	if !f.started {
		return
	}
	f.active, f.strict = true, true
	f.next(reason)
}

// Stop abandons the fetch: a restore in progress is aborted, which leaves
// the executor with an empty state. A done fetch is forgotten.
func (f *Fetcher) Stop() {
	if f.begun {
		f.abort()
	}
	f.active, f.started = false, false
	f.nextKey = nil
}

// restart starts the restore over and asks the current peer for the
// snapshot from its first key (after the backoff, if one runs). It does
// not abort the restore in progress first: RestoreBegin starts over
// (Restorer), and what the earlier restore installed is replaced by the
// new one's chunks or deleted (the executor merges the chunks into the
// state it holds, execution.Executor.RestoreBegin), so a retarget does
// not pay for wiping a large state before fetching it again.
func (f *Fetcher) restart() {
	f.early = nil
	f.index, f.nextKey, f.idle, f.bytes = 0, nil, 0, 0
	if f.target.Exact {
		f.index = f.target.Sequence
	}
	f.begun = true // even a failed RestoreBegin may leave a restore to abort
	if err := f.begin(); err != nil {
		// No request: the idle count moves on to the next peer, which
		// tries again.
		f.cfg.Logger.Error("state transfer: begin", "err", err)
		f.wait = 0
		return
	}
	if f.wait == 0 {
		f.request()
	}
}

// begin begins a restore, tagged when the Restorer is a Resumer and the
// target has a tag.
func (f *Fetcher) begin() error {
	if resumer, ok := f.cfg.Restorer.(Resumer); ok {
		if tag := f.tag(); tag != nil {
			return resumer.RestoreBeginTagged(tag)
		}
	}
	return f.cfg.Restorer.RestoreBegin()
}

func (f *Fetcher) abort() {
	if err := f.cfg.Restorer.RestoreAbort(); err != nil {
		f.cfg.Logger.Warn("state transfer: wiping state", "err", err)
		return
	}
	f.begun = false
}

func (f *Fetcher) request() {
	want := f.index
	if want == 0 {
		want = f.target.Sequence
	}
	req := &wire.StateRequest{Sequence: want, StartKey: f.nextKey}
	if f.cfg.Window > 1 {
		req.Chunks = uint32(f.cfg.Window)
	}
	f.due, f.early = f.cfg.Window, nil
	f.cfg.Request(f.target.Peers[f.current], req)
}

// next gives up on the current peer and asks the next one, after a
// backoff once a whole round of peers gave up without a chunk restored.
// When the current peer only failed to answer (timeout, unavailable), the
// next one continues the restore from the key it stopped at: every
// correct peer serves the same certified snapshot at one sequence, and
// the final digest check covers every chunk, whoever served it. Any
// other reason (a chunk refused, a changed sequence, a failed final
// check) starts the restore over.
func (f *Fetcher) next(reason string) {
	f.cfg.Observer.Rejected(reason)
	f.early = nil
	peer := f.target.Peers[f.current]
	f.current = (f.current + 1) % len(f.target.Peers)
	f.failures++
	f.wait = f.backoff()
	if reason == "digest_mismatch" {
		f.strict = true
	}
	resume := f.begun && !f.strict && (reason == "timeout" || reason == "unavailable")
	f.cfg.Logger.Warn("state transfer: trying another peer", "peer", peer, "reason", reason,
		"sequence", f.target.Sequence, "next", f.target.Peers[f.current], "resume", resume,
		"backoff_ticks", f.wait)
	if !resume {
		f.restart()
		return
	}
	f.idle = 0
	if f.wait == 0 {
		f.request()
	}
}

// backoff returns the ticks to wait before the next request: none within
// the first round of peers since the last chunk restored, then
// BackoffTicks doubling with each further round, up to MaxBackoffTicks.
func (f *Fetcher) backoff() int {
	rounds := f.failures / len(f.target.Peers)
	if rounds == 0 {
		return 0
	}
	wait := f.cfg.BackoffTicks
	for ; rounds > 1 && wait < f.cfg.MaxBackoffTicks; rounds-- {
		wait *= 2
	}
	return min(wait, f.cfg.MaxBackoffTicks)
}

// Chunk applies one chunk from peer from. It returns done (and the
// sequence installed) once the state is restored and checked; the caller
// then tells its core, and may call Fail if the core refuses (see the
// package doc). A chunk of the current window that arrives before the one
// it follows is held until that one is applied; any other chunk that is
// not the answer the Fetcher waits for is ignored.
func (f *Fetcher) Chunk(from uint32, c *wire.StateChunk) (installed uint64, done bool) {
	if f.holdEarly(from, c) {
		return 0, false
	}
	peer := f.Peer()
	installed, done = f.chunk(from, c)
	for !done && f.active && f.Peer() == peer && len(f.early) > 0 {
		held, ok := f.early[string(f.nextKey)]
		if !ok {
			break
		}
		delete(f.early, string(f.nextKey))
		installed, done = f.chunk(from, held)
	}
	return installed, done
}

// holdEarly keeps c for later and reports true when it is a chunk of the
// current window from the current peer that does not start at the next
// key: a later chunk of the window that overtook the one before it. At
// most due-1 are held (one window's worth), each at most one frame.
func (f *Fetcher) holdEarly(from uint32, c *wire.StateChunk) bool {
	if !f.active || f.wait > 0 || f.due <= 1 || from != f.target.Peers[f.current] || c.GetUnavailable() ||
		bytes.Compare(c.GetStartKey(), f.nextKey) <= 0 || len(f.early) >= f.due-1 ||
		(f.index != 0 && c.GetSequence() != f.index) || (f.target.Exact && c.GetSequence() != f.target.Sequence) {
		return false
	}
	if _, dup := f.early[string(c.GetStartKey())]; dup {
		return false
	}
	if f.early == nil {
		f.early = make(map[string]*wire.StateChunk, f.due-1)
	}
	f.early[string(c.GetStartKey())] = c
	return true
}

// chunk applies c if it is the chunk the Fetcher waits for (see Chunk).
func (f *Fetcher) chunk(from uint32, c *wire.StateChunk) (installed uint64, done bool) {
	if !f.active || f.wait > 0 || from != f.target.Peers[f.current] || !bytes.Equal(c.GetStartKey(), f.nextKey) ||
		(f.target.Exact && c.GetSequence() != f.target.Sequence) {
		f.cfg.Observer.Rejected("unexpected")
		return 0, false
	}
	switch {
	case f.index == 0 && c.GetSequence() < f.target.Sequence:
		f.next("too_old")
		return 0, false
	case f.index != 0 && c.GetSequence() != f.index:
		f.next("changed")
		return 0, false
	}
	f.idle = 0
	if c.GetUnavailable() {
		f.next("unavailable")
		return 0, false
	}
	f.index = c.GetSequence()
	if err := f.cfg.Restorer.RestoreChunk(c.GetEntries()); err != nil {
		f.cfg.Logger.Warn("state transfer: bad chunk", "peer", from, "err", err)
		f.next("bad_chunk")
		return 0, false
	}
	size := 0
	for _, e := range c.GetEntries() {
		size += len(e.GetKey()) + len(e.GetValue())
	}
	f.bytes += size
	f.failures = 0
	f.cfg.Observer.Received(len(c.GetEntries()), size)
	if len(c.GetNextKey()) > 0 {
		if bytes.Compare(c.GetNextKey(), f.nextKey) <= 0 {
			f.next("bad_chunk")
			return 0, false
		}
		f.nextKey = c.GetNextKey()
		if f.due--; f.due <= 0 {
			f.request()
		}
		return 0, false
	}
	if err := f.finish(); err != nil {
		f.cfg.Logger.Warn("state transfer: snapshot rejected", "peer", from, "sequence", f.index, "err", err)
		f.next("digest_mismatch")
		return 0, false
	}
	f.active = false
	f.cfg.Observer.Installed(f.index, f.bytes)
	f.cfg.Logger.Info("state transfer: installed", "sequence", f.index, "bytes", f.bytes, "peer", from)
	return f.index, true
}

// finish ends the restore and checks the state against the target.
func (f *Fetcher) finish() error {
	r := f.cfg.Restorer
	var err error
	if f.target.HasDigest && f.index == f.target.Sequence {
		_, err = r.RestoreFinishExpect(f.target.Digest)
	} else {
		_, err = r.RestoreFinish()
	}
	if err != nil {
		return fmt.Errorf("finish restore: %w", err)
	}
	f.begun = false
	if got := r.LastExecuted(); got != f.index {
		return fmt.Errorf("%w: last executed %d, served %d", errStateIndex, got, f.index)
	}
	return nil
}

type nopObserver struct{}

func (nopObserver) Started(Target)        {}
func (nopObserver) Rejected(string)       {}
func (nopObserver) Received(int, int)     {}
func (nopObserver) Installed(uint64, int) {}
