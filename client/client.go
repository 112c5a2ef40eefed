package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
)

// Config configures a Client.
type Config struct {
	ClusterID string
	// Key is the client's signing key. The client id is its public key
	// followed by Session.
	Key ed25519.PrivateKey
	// Session tells apart Clients that share Key: each session has its own
	// request numbers and its own reply window at the replicas, so several
	// processes may use one key at once. nil draws 8 random bytes; an empty
	// non-nil Session makes the client id the bare public key. At most
	// crypto.MaxClientSessionSize bytes.
	Session []byte
	// Replicas are the cluster's replicas (index, peer ID, address).
	Replicas []p2p.Member
	// ReplyQuorum is how many replicas must send the same result: f+1 for
	// PBFT (the default), 1 for the crash-fault Raft mode. With 1 the
	// client's requests go unsigned: Raft replicas take a request only on
	// its client's Noise-authenticated stream and check no signature (a
	// PBFT cluster, which needs f+1 >= 2, refuses unsigned requests).
	ReplyQuorum int
	// ReadQuorum is how many replicas must send the same read-only answer
	// for Read to return it without ordering the operation: 0 means 2f+1
	// (PBFT), or 1 when ReplyQuorum is 1 (the crash-fault Raft mode).
	ReadQuorum int
	// ReadTimeout is how long Read waits for ReadQuorum matching
	// read-only answers before it orders the operation instead (default
	// RetransmitTimeout: an ordered read costs as much as a write, and
	// answers that cannot match end the wait at once anyway).
	ReadTimeout time.Duration
	// ReadSpreadTimeout is how long Read waits for the ReadQuorum replicas
	// it asked first before asking the others too (default ReadTimeout/4).
	ReadSpreadTimeout time.Duration
	// RetransmitTimeout is how long to wait for the primary before sending
	// to every replica, and between later retransmissions (default 1s; it
	// doubles up to 8x).
	RetransmitTimeout time.Duration
	// Hint is where an earlier client found the primary (PBFT: a view;
	// Raft: a leader), as Client.Hint reported it: the client sends to
	// that primary first. nil: the client has no idea until a reply names
	// a view (see BroadcastWhenUnknown). A hint only steers where a
	// request goes first; a wrong one costs at most HintTimeout.
	Hint *Hint
	// BroadcastWhenUnknown makes a client with no idea of the primary (no
	// Hint, no reply yet) send to every replica at once rather than to the
	// primary of view 0. A short-lived client (the CLI) wants it: it
	// costs each replica one more request to verify, not a timeout. A
	// long-lived one pays the timeout once at most.
	BroadcastWhenUnknown bool
	// HintTimeout is how long a request sent to the primary named only by
	// Hint (remembered, perhaps stale) waits before it goes to every
	// replica (default RetransmitTimeout). Once a reply confirmed a view
	// or leader, RetransmitTimeout applies.
	HintTimeout time.Duration
	// Window is how far apart outstanding request numbers may be (default
	// 64, the replicas' per-client window). It bounds concurrency.
	Window uint64
	// FirstRequestNumber seeds the request numbers; 0 uses the clock, so a
	// restarted client does not reuse numbers.
	FirstRequestNumber uint64
	Logger             *slog.Logger
	// Genesis is the cluster file's configuration (membership epoch 0):
	// what Membership verifies a configuration history from. Empty: one
	// derived from Replicas, with no administrators (then only histories
	// without changes verify). Rules are the membership rules of the
	// cluster's protocol (config.MembershipRules; zero: PBFT's when
	// ReplyQuorum is above 1, Raft's otherwise).
	Genesis         membership.Config
	MembershipRules membership.Rules
	// Epoch is the membership epoch of the configuration Replicas lists
	// (0: the genesis; a configuration learned earlier by Membership and
	// kept, such as the CLI's session cache, has its own).
	Epoch uint64
	// CommittedRepliesOnly stops the client from asking for tentative
	// replies (Request.tentative): every result then waits for f+1
	// replicas' committed replies, an extra message round later. Without
	// it, an ordered request of a PBFT client (ReplyQuorum at least 2,
	// with at least 2*ReplyQuorum-1 members) asks for them, and Invoke
	// also returns a result once 2*ReplyQuorum-1 replicas (2f+1) sent it
	// with the same view and sequence, tentatively executed or committed
	// (see tentative.go). Such a result is as final as one of f+1
	// committed replies: f+1 correct replicas among them prepared its
	// batch at that sequence, so the batch commits there in whatever view.
	// Requests that ask for a receipt (InvokeWithReceipt), configuration
	// changes and reads never ask for tentative replies.
	CommittedRepliesOnly bool
	// TentativePause is how long the client stops asking for tentative
	// replies after a call that asked for them reached its first
	// retransmission holding some tentative replies but not 2f+1
	// (default 30 s; see tentative.go). A replica that answered a
	// request tentatively sends no committed reply when the batch
	// commits, so such a call waits for its retransmission, which the
	// replicas' reply caches answer; a replica that keeps silent toward
	// clients while it votes, beside a correct one slow to reach this
	// client, would make every call wait that long, where committed
	// replies need only f+1 replicas.
	TentativePause time.Duration
}

// Hint is what a client knows of where the cluster's primary is.
type Hint struct {
	// View is the highest view (Raft: term) that ReplyQuorum matching
	// replies reported; the primary of a PBFT view v is replica v mod n.
	View uint64
	// Leader is the replica a Raft reply named as leader, or -1 (PBFT,
	// or no leader known): then the primary of View is asked first.
	Leader int
}

// The outcome of an Invoke that did not return a result. errors.Is tells
// them apart; a caller that must know whether an operation took effect
// treats ErrUnknownOutcome as "maybe".
var (
	// ErrClosed is returned by Invoke after Close. An Invoke whose request
	// was already sent when Close came returns an error that is both
	// ErrClosed and ErrUnknownOutcome.
	ErrClosed = errors.New("client: closed")
	// ErrUnknownOutcome: the request was sent but ReplyQuorum matching
	// replies did not arrive before the context ended (or the client
	// closed). The operation may or may not have taken effect, now or
	// later; the error also wraps the context's error.
	ErrUnknownOutcome = errors.New("outcome unknown")
	// ErrRefused: ReplyQuorum replicas sent the same refusal (at least one
	// correct replica refused), so the operation did not and will not take
	// effect.
	ErrRefused = errors.New("refused")
)

// Client sends operations to a pbftnode cluster. Safe for concurrent use.
type Client struct {
	cfg    Config
	signer *crypto.Signer
	// requests signs the ordered requests, concurrent ones as bundles.
	requests requestSigner
	id       []byte
	host     *p2p.Host
	// send enqueues a frame for a replica: host.SendToReplica, or a fake
	// in benchmarks.
	send func(to uint32, frame []byte) bool
	n    int
	// span is one more than the highest member index, and member marks
	// the indices of members: after a reconfiguration the indices need
	// not be 0..n-1 (a removed index is never reused).
	span   int
	member []bool
	log    *slog.Logger

	mu          sync.Mutex
	windowFree  *sync.Cond
	next        uint64
	outstanding map[uint64]*call
	// lowest is the oldest outstanding request number while any is
	// outstanding (request numbers are handed out consecutively, so end
	// advances it past the ones already ended).
	lowest uint64
	// waiting counts begin calls blocked on windowFree.
	waiting int
	view    uint64
	// leader is the replica the last accepted reply named as leader
	// (Raft mode, ReplyQuorum 1), or -1: then the primary of view is
	// asked first.
	leader int
	// known: view and leader come from Config.Hint or a reply; without,
	// a request goes to every replica at once. confirmed: from a reply of
	// this client (then RetransmitTimeout applies, not HintTimeout).
	known, confirmed bool
	closed           bool
	done             chan struct{}
	wg               sync.WaitGroup

	reads readCounters
	// tentativeAccepts counts the calls accepted by the rule for
	// tentative replies (TentativeAccepts).
	tentativeAccepts atomic.Uint64
	// tentativePausedUntil: until then, calls ask for committed replies
	// only (guarded by mu; noteRetransmitLocked). tentativePauses counts
	// the pauses (TentativePauses).
	tentativePausedUntil time.Time
	tentativePauses      atomic.Uint64
	// receiptKeys are the members' public keys by index in epoch
	// receiptKeysEpoch, derived from their peer IDs for InvokeWithReceipt
	// (guarded by mu; rebuilt when Follow moves to another epoch).
	receiptKeys      map[uint32]ed25519.PublicKey
	receiptKeysEpoch uint64
	// history is the encoded configuration history (wire.ConfigHistory)
	// of the newest configuration Membership verified, historyEpoch its
	// epoch (guarded by mu): receipts of later epochs carry it.
	history      []byte
	historyEpoch uint64
	// receiptsRejected counts reply receipts InvokeWithReceipt dropped
	// (invalid, or beyond a call's queue).
	receiptsRejected atomic.Uint64
	// epochSeen is the highest membership epoch a reply reported
	// (guarded by mu): above Config.Epoch, the membership changed.
	epochSeen uint64
	// follow is the state of learning a new membership in the background
	// (guarded by mu; see followLocked).
	follow followState
	// crashFaults: ReplyQuorum is 1 (the Raft mode), fixed at New.
	crashFaults bool
	// defaultQuorums: ReplyQuorum and ReadQuorum were defaulted from the
	// number of replicas, so Follow recomputes them for a new membership.
	defaultReplyQuorum, defaultReadQuorum bool
}

// call is one Invoke waiting for matching replies.
type call struct {
	number uint64
	// readOnly: a Read's call, which counts only read-only answers (and
	// an ordered call only ordered ones); quorum is how many must match.
	readOnly bool
	quorum   int
	// tentativeQuorum is how many replies of one view and sequence, some
	// or all tentative, complete the call (2*quorum-1), set when its
	// request asked for tentative replies (askTentative); 0: tentative
	// replies do not count.
	tentativeQuorum int
	// byTag: the call was accepted by that rule (acceptedLocked).
	byTag  bool
	done   chan struct{}
	result []byte
	err    error
	// replies holds each replica's standing reply (its first committed
	// one, or its latest tentative one: call.recordLocked), by replica
	// index; it is inline for clusters of up to len(inline) replicas.
	replies []replyRecord
	inline  [4]replyRecord
	// receipts, set by InvokeWithReceipt, receives copies of the replies
	// that carry a receipt (see offerReceiptLocked); nil otherwise.
	receipts chan receiptReply
	// answers, set by Membership, receives every member's answer to a
	// config_query (see offerAnswerLocked); nil otherwise.
	answers chan queryAnswer
}

// New connects a client to the cluster. Connections are made in the
// background; Invoke waits (and retransmits) until replicas answer.
func New(cfg Config) (*Client, error) {
	if len(cfg.Replicas) == 0 {
		return nil, errors.New("client: no replicas")
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("client: no signing key")
	}
	n := len(cfg.Replicas)
	span, member, err := memberIndices(cfg.Replicas)
	if err != nil {
		return nil, err
	}
	defaultReply, defaultRead := cfg.ReplyQuorum <= 0, cfg.ReadQuorum <= 0
	if cfg.ReplyQuorum <= 0 {
		cfg.ReplyQuorum = (n-1)/3 + 1
	}
	if cfg.ReplyQuorum > n {
		return nil, fmt.Errorf("client: reply quorum %d above %d replicas", cfg.ReplyQuorum, n)
	}
	if cfg.RetransmitTimeout <= 0 {
		cfg.RetransmitTimeout = time.Second
	}
	if err := defaultReadConfig(&cfg, n); err != nil {
		return nil, err
	}
	if cfg.HintTimeout <= 0 {
		cfg.HintTimeout = cfg.RetransmitTimeout
	}
	if cfg.TentativePause <= 0 {
		cfg.TentativePause = DefaultTentativePause
	}
	if cfg.Window == 0 {
		cfg.Window = 64
	}
	if cfg.FirstRequestNumber == 0 {
		cfg.FirstRequestNumber = uint64(time.Now().UnixNano())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Session == nil {
		cfg.Session = make([]byte, 8)
		if _, err := rand.Read(cfg.Session); err != nil {
			return nil, fmt.Errorf("client: session: %w", err)
		}
	}
	id, err := crypto.ClientID(cfg.Key.Public().(ed25519.PublicKey), cfg.Session)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	libp2pKey, err := identity.LibP2PPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		cfg:    cfg,
		signer: crypto.NewSigner(cfg.Key, cfg.ClusterID),
		n:      n,
		span:   span,
		member: member,

		crashFaults:        cfg.ReplyQuorum == 1,
		defaultReplyQuorum: defaultReply,
		defaultReadQuorum:  defaultRead,
		log:                cfg.Logger,
		next:               cfg.FirstRequestNumber,
		outstanding:        make(map[uint64]*call),
		done:               make(chan struct{}),
		leader:             -1,
	}
	c.id = id
	c.adoptHint(cfg.Hint)
	c.windowFree = sync.NewCond(&c.mu)
	// Replies are handled on the goroutines that read them (one per
	// replica), not handed over a channel to another goroutine: one
	// goroutine switch less per reply. handleReply never blocks.
	host, err := p2p.New(p2p.Config{
		PrivateKey: libp2pKey,
		Self:       -1,
		Members:    cfg.Replicas,
		Logger:     cfg.Logger,
		OnReply:    c.handleReply,
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c.host = host
	c.send = host.SendToReplica
	return c, nil
}

// memberIndices returns one more than the highest replica index and which
// indices are replicas', refusing an index listed twice or one beyond
// membership.MaxMembers times 16 (indices are never reused, so they grow
// with removals, but a reply slot per index must stay cheap).
func memberIndices(replicas []p2p.Member) (int, []bool, error) {
	span := 0
	for _, r := range replicas {
		if r.Index >= maxMemberIndex {
			return 0, nil, fmt.Errorf("client: replica index %d (at most %d)", r.Index, maxMemberIndex-1)
		}
		span = max(span, int(r.Index)+1)
	}
	member := make([]bool, span)
	for _, r := range replicas {
		if member[r.Index] {
			return 0, nil, fmt.Errorf("client: replica index %d listed twice", r.Index)
		}
		member[r.Index] = true
	}
	return span, member, nil
}

// maxMemberIndex bounds replica indices (see memberIndices).
const maxMemberIndex = 4096

// isMember reports whether index is a replica's.
func (c *Client) isMember(index int) bool {
	return index >= 0 && index < c.span && c.member[index]
}

// ID returns the client id: its Ed25519 public key followed by its session.
func (c *Client) ID() []byte { return c.id }

// Invoke orders op through the cluster and returns its result once
// ReplyQuorum replicas sent the same one in committed replies, or (unless
// Config.CommittedRepliesOnly) 2*ReplyQuorum-1 replicas sent it with the
// same view and sequence, tentative replies included (tentative.go). It
// sends to the primary it believes in (see Config.Hint and
// BroadcastWhenUnknown) and retransmits to every replica until ctx ends.
// Errors: ErrRefused when ReplyQuorum replicas refused; ErrUnknownOutcome
// (wrapping ctx's error) when ctx ended after the request was sent;
// ErrClosed.
func (c *Client) Invoke(ctx context.Context, op []byte) ([]byte, error) {
	cl, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer c.end(cl)
	return c.await(ctx, cl, op, nil)
}

// await sends op as cl's request and waits for its outcome. With col set
// (InvokeWithReceipt) it also feeds col the replies' receipts and, once
// the result is agreed, waits on until col is complete or ctx ends.
func (c *Client) await(ctx context.Context, cl *call, op []byte, col *receiptCollector) ([]byte, error) {
	// A call that wants a receipt says so in its request: replicas sign
	// and attach receipts only for requests that ask, and then reply
	// committed only, so such a call asks for no tentative replies.
	flags := requestFlags{receipt: col != nil}
	flags.tentative = col == nil && c.askTentative(cl)
	return c.awaitFrame(ctx, cl, c.frame(cl.number, op, flags), col)
}

// awaitFrame is await with cl's request already encoded and signed.
func (c *Client) awaitFrame(ctx context.Context, cl *call, frame []byte, col *receiptCollector) ([]byte, error) {
	timeout := c.sendFirst(frame)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	timeout = c.cfg.RetransmitTimeout
	done := cl.done
	var receipts chan receiptReply
	if col != nil {
		receipts = cl.receipts
	}
	for {
		select {
		case <-done:
			if col == nil || cl.err != nil || col.agreed(cl.result) {
				return cl.result, cl.err
			}
			// The result is in without f+1 receipts (replicas that attach
			// them only to cached replies, or lost ones): ask every
			// replica again, once; their reply caches answer.
			done = nil
			c.sendAll(frame)
		case rr := <-receipts:
			if col.add(rr) {
				return cl.result, nil
			}
		case <-ctx.Done():
			if col != nil && resultAgreed(cl) {
				return col.finish(cl, ctx.Err())
			}
			return nil, fmt.Errorf("client: request %d: %w: %w", cl.number, ErrUnknownOutcome, ctx.Err())
		case <-c.done:
			return nil, fmt.Errorf("client: request %d: %w: %w", cl.number, ErrUnknownOutcome, ErrClosed)
		case <-timer.C:
			// The primary may be slow, faulty or gone: send to everyone,
			// and check whether the membership moved on.
			c.mu.Lock()
			c.followLocked()
			c.noteRetransmitLocked(cl)
			c.mu.Unlock()
			c.sendAll(frame)
			timeout = min(2*timeout, 8*c.cfg.RetransmitTimeout)
			timer.Reset(timeout)
		}
	}
}

// sendFirst sends a request's first frame: to the primary the client
// believes in (view 0's with no idea), or to every replica when it has no
// idea and BroadcastWhenUnknown is set. It returns how long to wait
// before sending to every replica.
func (c *Client) sendFirst(frame []byte) time.Duration {
	c.mu.Lock()
	known, confirmed := c.known, c.confirmed
	primary := c.cfg.Replicas[c.view%uint64(c.n)].Index
	if c.leader >= 0 {
		primary = uint32(c.leader)
	}
	c.mu.Unlock()
	switch {
	case !known && c.cfg.BroadcastWhenUnknown:
		c.sendAll(frame)
		return c.cfg.RetransmitTimeout
	case known && !confirmed:
		c.send(primary, frame)
		return c.cfg.HintTimeout
	}
	c.send(primary, frame)
	return c.cfg.RetransmitTimeout
}

// sendAll sends frame to every replica.
func (c *Client) sendAll(frame []byte) {
	c.mu.Lock()
	replicas := c.cfg.Replicas // replaced, never modified, by Follow
	c.mu.Unlock()
	for i := range replicas {
		c.send(replicas[i].Index, frame)
	}
}

// Hint reports where the client believes the primary is, to hand to a
// later client's Config.Hint; ok is false when it has no idea.
func (c *Client) Hint() (h Hint, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Hint{View: c.view, Leader: c.leader}, c.known
}

// adoptHint starts the client from h (nil: no idea). A leader is taken
// only where a reply's leader hint would be (ReplyQuorum 1) and only
// inside the cluster.
func (c *Client) adoptHint(h *Hint) {
	if h == nil {
		return
	}
	c.known, c.view = true, h.View
	if c.cfg.ReplyQuorum == 1 && c.isMember(h.Leader) {
		c.leader = h.Leader
	}
}

// begin allocates the next request number once it is within the window of
// the oldest outstanding one.
func (c *Client) begin(ctx context.Context) (*call, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.waitRoomLocked(ctx, c.windowOpenLocked); err != nil {
		return nil, err
	}
	cl := c.newCallLocked(c.next, c.cfg.ReplyQuorum)
	if len(c.outstanding) == 0 {
		c.lowest = cl.number
	}
	c.next++
	c.outstanding[cl.number] = cl
	return cl, nil
}

// waitRoomLocked waits on windowFree until room reports true, and fails
// when the client closes or ctx ends first. c.mu must be held.
func (c *Client) waitRoomLocked(ctx context.Context, room func() bool) error {
	registered := false
	for {
		if c.closed {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("client: %w", err)
		}
		if room() {
			return nil
		}
		// Wake up when ctx ends; only a call that must wait pays for it.
		if !registered {
			registered = true
			stop := context.AfterFunc(ctx, func() {
				c.mu.Lock()
				c.windowFree.Broadcast()
				c.mu.Unlock()
			})
			defer stop()
		}
		c.waiting++
		c.windowFree.Wait()
		c.waiting--
	}
}

// newCallLocked returns a call for request number, done once quorum
// replies match.
func (c *Client) newCallLocked(number uint64, quorum int) *call {
	cl := &call{number: number, done: make(chan struct{}), quorum: quorum}
	if c.span <= len(cl.inline) {
		cl.replies = cl.inline[:c.span]
	} else {
		cl.replies = make([]replyRecord, c.span)
	}
	return cl
}

// windowOpenLocked reports whether the next request number is within the
// window of the oldest outstanding one.
func (c *Client) windowOpenLocked() bool {
	return len(c.outstanding) == 0 || c.next-c.lowest < c.cfg.Window
}

// end retires cl's request number. When it was the oldest, the window
// moves up to the next outstanding number and blocked begins re-check it.
func (c *Client) end(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outstanding[cl.number] != cl {
		return
	}
	delete(c.outstanding, cl.number)
	if cl.number != c.lowest {
		return
	}
	if len(c.outstanding) == 0 {
		c.lowest = c.next
	} else {
		// Every number is passed at most once: O(1) amortised.
		for c.outstanding[c.lowest] == nil {
			c.lowest++
		}
	}
	if c.waiting > 0 {
		c.windowFree.Broadcast()
	}
}

// requestFlags are the boolean fields of a wire.Request the client sets.
type requestFlags struct {
	readOnly  bool // Request.read_only: a Read's, unsigned
	receipt   bool // Request.receipt: replicas attach reply receipts
	tentative bool // Request.tentative: replicas may reply tentatively
}

// frame encodes and signs the request as a ClientFrame{request:
// Signed{payload: Request, signature}}, byte for byte what proto.Marshal
// makes of those messages. flags set Request's boolean fields. Read-only
// requests, and every request of a crash-fault (Raft mode, ReplyQuorum 1)
// client, go without a signature; the others are signed by c.requests,
// with a plain signature or, when other calls are signing at the same
// time, a bundle's (crypto.SignRequests).
func (c *Client) frame(number uint64, op []byte, flags requestFlags) []byte {
	const bytesType = protowire.BytesType
	// A read-only request is not signed: it travels only on the client's
	// own Noise-authenticated stream, where replicas answer it without
	// verifying a signature and never relay it (an unsigned request on
	// the ordering path is refused), so a signature would cost the client
	// for nothing. Its fallback to the ordered path is a new, signed
	// request.
	// A Raft replica checks no signature either (crash faults: the
	// client is who its Noise session says, and requests travel between
	// replicas inside raft entries, unsigned), so a Raft-mode client
	// signs nothing: signing was about a tenth of a benchmark client's
	// CPU.
	sign := !flags.readOnly && !c.crashFaults
	payload := c.requestPayload(number, op, flags)
	var sig []byte
	if sign {
		sig = c.requests.sign(c.signer, c.id, payload)
	}
	signedLen := 0
	if len(sig) > 0 {
		signedLen = protowire.SizeTag(2) + protowire.SizeBytes(len(sig))
	}
	if len(payload) > 0 {
		signedLen += protowire.SizeTag(1) + protowire.SizeBytes(len(payload))
	}
	buf := make([]byte, 0, protowire.SizeTag(1)+protowire.SizeBytes(signedLen))
	buf = protowire.AppendTag(buf, 1, bytesType) // ClientFrame.request
	buf = protowire.AppendVarint(buf, uint64(signedLen))
	if len(payload) > 0 {
		buf = protowire.AppendTag(buf, 1, bytesType) // Signed.payload
		buf = protowire.AppendBytes(buf, payload)
	}
	if len(sig) > 0 {
		buf = protowire.AppendTag(buf, 2, bytesType) // Signed.signature
		buf = protowire.AppendBytes(buf, sig)
	}
	return buf
}

// requestPayload encodes the wire.Request, byte for byte what
// proto.Marshal makes of it.
func (c *Client) requestPayload(number uint64, op []byte, flags requestFlags) []byte {
	const bytesType = protowire.BytesType
	payloadLen := 0
	if len(c.id) > 0 {
		payloadLen += protowire.SizeTag(1) + protowire.SizeBytes(len(c.id))
	}
	if number != 0 {
		payloadLen += protowire.SizeTag(2) + protowire.SizeVarint(number)
	}
	if len(op) > 0 {
		payloadLen += protowire.SizeTag(3) + protowire.SizeBytes(len(op))
	}
	if flags.readOnly {
		payloadLen += protowire.SizeTag(4) + protowire.SizeVarint(1)
	}
	if flags.receipt {
		payloadLen += protowire.SizeTag(7) + protowire.SizeVarint(1)
	}
	if flags.tentative {
		payloadLen += protowire.SizeTag(8) + protowire.SizeVarint(1)
	}
	payload := make([]byte, 0, payloadLen)
	if len(c.id) > 0 {
		payload = protowire.AppendTag(payload, 1, bytesType) // Request.client_id
		payload = protowire.AppendBytes(payload, c.id)
	}
	if number != 0 {
		payload = protowire.AppendTag(payload, 2, protowire.VarintType) // Request.request_number
		payload = protowire.AppendVarint(payload, number)
	}
	if len(op) > 0 {
		payload = protowire.AppendTag(payload, 3, bytesType) // Request.operation
		payload = protowire.AppendBytes(payload, op)
	}
	if flags.readOnly {
		payload = protowire.AppendTag(payload, 4, protowire.VarintType) // Request.read_only
		payload = protowire.AppendVarint(payload, 1)
	}
	if flags.receipt {
		payload = protowire.AppendTag(payload, 7, protowire.VarintType) // Request.receipt
		payload = protowire.AppendVarint(payload, 1)
	}
	if flags.tentative {
		payload = protowire.AppendTag(payload, 8, protowire.VarintType) // Request.tentative
		payload = protowire.AppendVarint(payload, 1)
	}
	return payload
}

// Close disconnects the client. Pending Invoke calls return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.windowFree.Broadcast()
	c.mu.Unlock()
	err := c.host.Close()
	c.wg.Wait()
	return err
}
