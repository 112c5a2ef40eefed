package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// Config configures a Client.
type Config struct {
	ClusterID string
	// Key is the client's signing key; its public key is the client id.
	Key ed25519.PrivateKey
	// Replicas are the cluster's replicas (index, peer ID, address).
	Replicas []p2p.Member
	// ReplyQuorum is how many replicas must send the same result: f+1 for
	// PBFT (the default), 1 for the crash-fault Raft mode.
	ReplyQuorum int
	// RetransmitTimeout is how long to wait for the primary before sending
	// to every replica, and between later retransmissions (default 1s; it
	// doubles up to 8x).
	RetransmitTimeout time.Duration
	// Window is how far apart outstanding request numbers may be (default
	// 64, the replicas' per-client window). It bounds concurrency.
	Window uint64
	// FirstRequestNumber seeds the request numbers; 0 uses the clock, so a
	// restarted client does not reuse numbers.
	FirstRequestNumber uint64
	Logger             *slog.Logger
}

// ErrClosed is returned by Invoke after Close.
var ErrClosed = errors.New("client: closed")

// Client sends operations to a pbftnode cluster. Safe for concurrent use.
type Client struct {
	cfg    Config
	signer *crypto.Signer
	id     []byte
	host   *p2p.Host
	n      int
	log    *slog.Logger

	mu          sync.Mutex
	windowFree  *sync.Cond
	next        uint64
	outstanding map[uint64]*call
	view        uint64
	// leader is the replica the last accepted reply named as leader
	// (Raft mode, ReplyQuorum 1), or -1: then the primary of view is
	// asked first.
	leader int
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// call is one Invoke waiting for matching replies.
type call struct {
	number  uint64
	results map[uint32]string // replica -> result (or "error:" + refusal)
	views   map[uint32]uint64
	done    chan struct{}
	result  []byte
	err     error
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
	if cfg.ReplyQuorum <= 0 {
		cfg.ReplyQuorum = (n-1)/3 + 1
	}
	if cfg.ReplyQuorum > n {
		return nil, fmt.Errorf("client: reply quorum %d above %d replicas", cfg.ReplyQuorum, n)
	}
	if cfg.RetransmitTimeout <= 0 {
		cfg.RetransmitTimeout = time.Second
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
	libp2pKey, err := crypto.LibP2PPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	host, err := p2p.New(p2p.Config{
		PrivateKey: libp2pKey,
		Self:       -1,
		Members:    cfg.Replicas,
		Logger:     cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		cfg:         cfg,
		signer:      crypto.NewSigner(cfg.Key, cfg.ClusterID),
		host:        host,
		n:           n,
		log:         cfg.Logger,
		next:        cfg.FirstRequestNumber,
		outstanding: make(map[uint64]*call),
		done:        make(chan struct{}),
		leader:      -1,
	}
	c.id = c.signer.Public()
	c.windowFree = sync.NewCond(&c.mu)
	c.wg.Add(1)
	go c.readReplies()
	return c, nil
}

// ID returns the client id (its Ed25519 public key).
func (c *Client) ID() []byte { return c.id }

// Invoke orders op through the cluster and returns its result once
// ReplyQuorum replicas sent the same one. It retransmits until ctx ends.
func (c *Client) Invoke(ctx context.Context, op []byte) ([]byte, error) {
	cl, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer c.end(cl)
	frame, err := c.frame(cl.number, op)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	primary := uint32(c.view % uint64(c.n))
	if c.leader >= 0 {
		primary = uint32(c.leader)
	}
	c.mu.Unlock()
	c.host.SendToReplica(primary, frame)

	timeout := c.cfg.RetransmitTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-cl.done:
			return cl.result, cl.err
		case <-ctx.Done():
			return nil, fmt.Errorf("client: request %d: %w", cl.number, ctx.Err())
		case <-c.done:
			return nil, ErrClosed
		case <-timer.C:
			// The primary may be slow, faulty or gone: send to everyone.
			for i := range c.cfg.Replicas {
				c.host.SendToReplica(c.cfg.Replicas[i].Index, frame)
			}
			timeout = min(2*timeout, 8*c.cfg.RetransmitTimeout)
			timer.Reset(timeout)
		}
	}
}

// begin allocates the next request number once it is within the window of
// the oldest outstanding one.
func (c *Client) begin(ctx context.Context) (*call, error) {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.windowFree.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		if c.oldestLocked() == 0 || c.next-c.oldestLocked() < c.cfg.Window {
			break
		}
		c.windowFree.Wait()
	}
	cl := &call{
		number:  c.next,
		results: make(map[uint32]string),
		views:   make(map[uint32]uint64),
		done:    make(chan struct{}),
	}
	c.next++
	c.outstanding[cl.number] = cl
	return cl, nil
}

func (c *Client) oldestLocked() uint64 {
	var oldest uint64
	for n := range c.outstanding {
		if oldest == 0 || n < oldest {
			oldest = n
		}
	}
	return oldest
}

func (c *Client) end(cl *call) {
	c.mu.Lock()
	delete(c.outstanding, cl.number)
	c.windowFree.Broadcast()
	c.mu.Unlock()
}

func (c *Client) frame(number uint64, op []byte) ([]byte, error) {
	payload, err := proto.Marshal(&wire.Request{ClientId: c.id, RequestNumber: number, Operation: op})
	if err != nil {
		return nil, fmt.Errorf("client: encode request: %w", err)
	}
	signed := &wire.Signed{Payload: payload, Signature: c.signer.Sign(crypto.DomainClientRequest, payload)}
	frame, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: signed}})
	if err != nil {
		return nil, fmt.Errorf("client: encode frame: %w", err)
	}
	return frame, nil
}

// readReplies matches replies to outstanding calls.
func (c *Client) readReplies() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case f, ok := <-c.host.Replies():
			if !ok {
				return
			}
			c.handleReply(f)
		}
	}
}

func (c *Client) handleReply(f p2p.Frame) {
	if f.FromIndex < 0 || f.FromIndex >= c.n {
		return
	}
	var r wire.Reply
	if err := proto.Unmarshal(f.Data, &r); err != nil {
		c.log.Debug("malformed reply", "replica", f.FromIndex, "err", err)
		return
	}
	// The stream authenticates the replica; a Replica field that disagrees
	// marks a lying replica, whose reply does not count.
	replica := uint32(f.FromIndex)
	if r.Replica != replica || string(r.ClientId) != string(c.id) {
		return
	}
	outcome := "result:" + string(r.Result)
	if r.Error != "" {
		outcome = "error:" + r.Error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.outstanding[r.RequestNumber]
	if cl == nil || cl.result != nil || cl.err != nil {
		return
	}
	if _, seen := cl.results[replica]; seen {
		return // a replica's first reply stands
	}
	cl.results[replica] = outcome
	cl.views[replica] = r.View
	var views []uint64
	for rep, o := range cl.results {
		if o == outcome {
			views = append(views, cl.views[rep])
		}
	}
	matching := len(views)
	if matching < c.cfg.ReplyQuorum {
		return
	}
	// At least one of ReplyQuorum replicas is correct, so the
	// ReplyQuorum-th highest view they report is one a correct replica
	// reached: a faulty replica cannot steer the client to a made-up view.
	slices.Sort(views)
	if v := views[len(views)-c.cfg.ReplyQuorum]; v > c.view {
		c.view = v
	}
	// A leader hint is trusted only where one reply suffices (the Raft
	// mode, crash faults only): a Byzantine replica could name anyone.
	if c.cfg.ReplyQuorum == 1 && r.LeaderHint > 0 && int(r.LeaderHint) <= c.n {
		c.leader = int(r.LeaderHint) - 1
	}
	if r.Error != "" {
		cl.err = fmt.Errorf("client: request refused by %d replicas: %s", matching, r.Error)
	} else {
		cl.result = append([]byte{}, r.Result...)
	}
	close(cl.done)
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
