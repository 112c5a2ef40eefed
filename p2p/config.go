package p2p

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
)

// Defaults applied to zero Config fields.
const (
	DefaultPeerQueueSize       = 1024
	DefaultInboundBuffer       = 4096
	DefaultWriteTimeout        = 10 * time.Second
	DefaultDialTimeout         = 10 * time.Second
	DefaultReconnectBackoffMin = 100 * time.Millisecond
	DefaultReconnectBackoffMax = 10 * time.Second
)

// Member is one replica of the cluster configuration.
type Member struct {
	// Index is the replica index, unique in the configuration.
	Index uint32
	// ID is the replica's libp2p peer ID, derived from its Ed25519 key.
	ID peer.ID
	// Addr is where the replica listens, e.g. /ip4/10.0.0.1/tcp/26600 (a
	// trailing /p2p/<ID> is accepted if it matches ID). It may be nil when
	// not yet known; supply it later with Host.SetMemberAddr.
	Addr multiaddr.Multiaddr
}

// Config configures a Host. A replica host has Self set to its own member
// index; a client host has Self = -1.
type Config struct {
	PrivateKey    crypto.PrivKey // libp2p identity (Ed25519); required
	ListenAddr    string         // e.g. "/ip4/127.0.0.1/tcp/26600"; "" for a client host that does not listen
	Self          int            // this replica's member index, or -1 for a client host
	Members       []Member       // all replicas, including self
	MaxFrameSize  int            // 0 -> DefaultMaxFrameSize
	PeerQueueSize int            // 0 -> DefaultPeerQueueSize frames per peer (and per client on a replica)
	InboundBuffer int            // client host: capacity of the Replies channel; 0 -> DefaultInboundBuffer
	// OnReply, on a client host, takes each reply instead of the Replies
	// channel (which then stays empty): it is called on the goroutine
	// reading the replica's stream, so calls for different replicas run
	// concurrently and each replica's come in order, and none after Close
	// returns. It must not block: the stream is not read meanwhile. nil:
	// replies go to the Replies channel.
	OnReply        func(Frame)
	ClientsAllowed bool // replica host: accept connections and ClientProtocol streams from non-members
	// ClientAllowlist, when not empty, restricts ClientsAllowed to these
	// peers: the gater refuses inbound connections from peers that are
	// neither members nor listed, and ClientProtocol streams from peers not
	// listed are reset; both count in Stats.RejectedPeers. Empty: any peer
	// may connect as a client. Replica hosts with ClientsAllowed only.
	ClientAllowlist []peer.ID
	Logger          *slog.Logger // nil -> discard
	// ClientRateLimit bounds the request frames one client (one peer ID,
	// over all its streams) may deliver per second, with bursts of
	// ClientRateBurst; frames beyond it are dropped before decoding and
	// counted in Stats.RateLimited. 0: unlimited (the per-client pending
	// bound of the protocol still keeps a flooding client from starving
	// others). Replica hosts with ClientsAllowed only.
	ClientRateLimit float64
	ClientRateBurst int // 0 -> max(1, ClientRateLimit)
	// ReplicaProtocol is the stream protocol between replicas:
	// ReplicaProtocol (the default) for PBFT, RaftProtocol for Raft.
	ReplicaProtocol protocol.ID
	Rand            *rand.Rand // backoff jitter; nil -> seeded from crypto/rand once

	WriteTimeout        time.Duration // bound on writing one batch of frames; 0 -> DefaultWriteTimeout
	DialTimeout         time.Duration // bound on one dial and stream negotiation; 0 -> DefaultDialTimeout
	ReconnectBackoffMin time.Duration // first reconnect delay; 0 -> DefaultReconnectBackoffMin
	ReconnectBackoffMax time.Duration // reconnect delay cap; 0 -> DefaultReconnectBackoffMax

	// Inbound bounds and weighs the replica host's per-source inbound
	// queues (zero fields: defaults).
	Inbound InboundLimits
	// ReplyQueueBytes bounds the reply bytes queued for one client key;
	// 0 -> DefaultReplyQueueBytes. PeerQueueSize bounds them in frames.
	ReplyQueueBytes int
	// ClientByteRate and ClientByteBurst pace the reading of one client
	// key's streams (all of them together): after a frame the stream
	// reader waits until the key's token bucket, ClientByteRate bytes a
	// second with bursts of ClientByteBurst, covers it, so a key that
	// pushes more stalls in TCP and yamux flow control instead of costing
	// this host decryption, copying and signature checks (Stats.
	// ClientBytesPaced counts the waits). 0 -> defaults; negative
	// ClientByteRate: unpaced. The burst is raised to MaxFrameSize if
	// below it.
	ClientByteRate  int
	ClientByteBurst int
	// FrameDeadlineBase and FrameMinRate give a frame that has begun
	// arriving FrameDeadlineBase + length/FrameMinRate to complete, else
	// its stream is reset (Stats.IncompleteFrameTimeouts); 0 -> defaults.
	FrameDeadlineBase time.Duration
	FrameMinRate      int // bytes per second
	// PartialBytesPerClient and PartialBytesTotal bound the claimed bytes
	// of client frames still arriving, per key and in all; a stream whose
	// frame would exceed them is reset (Stats.RejectedPartial). 0 ->
	// defaults.
	PartialBytesPerClient, PartialBytesTotal int
	// FaultyBackoffMin and FaultyBackoffMax bound how long a source
	// reported with ReportFaulty is backed off; 0 -> defaults.
	FaultyBackoffMin, FaultyBackoffMax time.Duration
	// Streams bounds how fast each client key may open ClientProtocol
	// streams (zero fields: defaults; see StreamLimits). Replica hosts only.
	Streams StreamLimits
	// Now is the clock of the fault backoffs and of the stream-opening
	// limit; nil -> time.Now.
	Now func() time.Time
}

// newHost validates cfg, applies defaults and builds the Host's state
// without starting anything.
func newHost(cfg Config) (*Host, error) {
	if cfg.PrivateKey == nil {
		return nil, errors.New("p2p: config: PrivateKey is required")
	}
	if cfg.PrivateKey.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("p2p: config: PrivateKey must be Ed25519, not %s", cfg.PrivateKey.Type())
	}
	selfID, err := peer.IDFromPrivateKey(cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("p2p: config: peer ID from private key: %w", err)
	}
	if len(cfg.Members) == 0 {
		return nil, errors.New("p2p: config: Members is empty")
	}
	h := &Host{
		logger:       cfg.Logger,
		self:         cfg.Self,
		clientHost:   cfg.Self == -1,
		replicaProto: orDefaultProtocol(cfg.ReplicaProtocol),
		clientRate:   cfg.ClientRateLimit,
		clientBurst:  clientBurst(cfg.ClientRateLimit, cfg.ClientRateBurst),
		maxFrameSize: orDefault(cfg.MaxFrameSize, DefaultMaxFrameSize),
		queueSize:    orDefault(cfg.PeerQueueSize, DefaultPeerQueueSize),
		writeTimeout: orDefault(cfg.WriteTimeout, DefaultWriteTimeout),
		dialTimeout:  orDefault(cfg.DialTimeout, DefaultDialTimeout),
		backoffMin:   orDefault(cfg.ReconnectBackoffMin, DefaultReconnectBackoffMin),
		backoffMax:   orDefault(cfg.ReconnectBackoffMax, DefaultReconnectBackoffMax),
		clients:      make(map[peer.ID]*clientSession),
		closed:       make(chan struct{}),
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.maxFrameSize < 0 || h.queueSize < 0 || cfg.InboundBuffer < 0 {
		return nil, errors.New("p2p: config: MaxFrameSize, PeerQueueSize and InboundBuffer must not be negative")
	}
	if h.backoffMin <= 0 || h.backoffMax < h.backoffMin || h.writeTimeout <= 0 || h.dialTimeout <= 0 {
		return nil, errors.New("p2p: config: timeouts must be positive and ReconnectBackoffMax >= ReconnectBackoffMin")
	}
	set, err := newMemberSet(cfg.Members)
	if err != nil {
		return nil, fmt.Errorf("p2p: config: %w", err)
	}
	h.members.Store(set)
	switch {
	case cfg.Self == -1:
		if cfg.ClientsAllowed {
			return nil, errors.New("p2p: config: ClientsAllowed applies to replica hosts only")
		}
		if _, isMember := set.byID[selfID]; isMember {
			return nil, errors.New("p2p: config: a client host must not use a member's key")
		}
		if len(cfg.ClientAllowlist) > 0 {
			return nil, errors.New("p2p: config: ClientAllowlist applies to replica hosts only")
		}
	case cfg.Self >= 0 && uint64(cfg.Self) <= uint64(^uint32(0)):
		m, ok := set.byIndex[uint32(cfg.Self)]
		if !ok {
			return nil, fmt.Errorf("p2p: config: Self %d is not a member index", cfg.Self)
		}
		if m.ID != selfID {
			return nil, fmt.Errorf("p2p: config: member %d has peer ID %s, but PrivateKey is %s", cfg.Self, m.ID, selfID)
		}
		if cfg.ListenAddr == "" {
			return nil, errors.New("p2p: config: a replica host needs a ListenAddr")
		}
		if len(cfg.ClientAllowlist) > 0 && !cfg.ClientsAllowed {
			return nil, errors.New("p2p: config: ClientAllowlist needs ClientsAllowed")
		}
	default:
		return nil, fmt.Errorf("p2p: config: Self %d is neither -1 nor a member index", cfg.Self)
	}
	if len(cfg.ClientAllowlist) > 0 {
		h.clientAllowlist = make(peerSet, len(cfg.ClientAllowlist))
		for i, id := range cfg.ClientAllowlist {
			if err := id.Validate(); err != nil {
				return nil, fmt.Errorf("p2p: config: ClientAllowlist[%d]: %w", i, err)
			}
			h.clientAllowlist[id] = struct{}{}
		}
	}
	inbound := orDefault(cfg.InboundBuffer, DefaultInboundBuffer)
	h.replies = make(chan Frame, inbound)
	h.onReply = cfg.OnReply
	if err := h.configureInbound(cfg); err != nil {
		return nil, err
	}

	rng := cfg.Rand
	if rng == nil {
		var seed [16]byte
		if _, err := crand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("p2p: seed backoff jitter: %w", err)
		}
		rng = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	h.rng = &lockedRand{rng: rng}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// configureInbound sets up the inbound queues, deadlines and budgets.
func (h *Host) configureInbound(cfg Config) error {
	if cfg.ReplyQueueBytes < 0 || cfg.Streams.ClientBurst < 0 || cfg.Streams.NewcomerBurst < 0 || cfg.Streams.Keys < 0 || cfg.FrameDeadlineBase < 0 || cfg.FrameMinRate < 0 ||
		cfg.PartialBytesPerClient < 0 || cfg.PartialBytesTotal < 0 || cfg.FaultyBackoffMin < 0 || cfg.FaultyBackoffMax < 0 {
		return errors.New("p2p: config: inbound limits must not be negative")
	}
	h.replyQueueBytes = orDefault(cfg.ReplyQueueBytes, DefaultReplyQueueBytes)
	h.clientByteRate = orDefault(cfg.ClientByteRate, DefaultClientByteRate)
	h.clientByteBurst = max(orDefault(cfg.ClientByteBurst, DefaultClientByteBurst), h.maxFrameSize)
	h.deadline = frameDeadline{
		base: orDefault(cfg.FrameDeadlineBase, DefaultFrameDeadlineBase),
		rate: orDefault(cfg.FrameMinRate, DefaultFrameMinRate),
	}
	if !h.clientHost {
		h.partial = newPartialBudget(
			orDefault(cfg.PartialBytesPerClient, DefaultPartialBytesPerClient),
			orDefault(cfg.PartialBytesTotal, DefaultPartialBytesTotal))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	lo := orDefault(cfg.FaultyBackoffMin, DefaultFaultyBackoffMin)
	h.faulty = newFaultBook(lo, max(lo, orDefault(cfg.FaultyBackoffMax, DefaultFaultyBackoffMax)), now)
	h.sched = newScheduler(cfg.Inbound, &h.stats, h.faulty)
	if !h.clientHost {
		h.streamGate = newStreamGate(cfg.Streams, now, h.sched.isEstablished)
	}
	return nil
}

// peerSet is a set of peer IDs. A nil peerSet is an absent allowlist: it
// allows every peer.
type peerSet map[peer.ID]struct{}

// allows reports whether p may connect: always for a nil set, otherwise
// only if p is in it.
func (s peerSet) allows(p peer.ID) bool {
	if s == nil {
		return true
	}
	_, ok := s[p]
	return ok
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func orDefaultProtocol(p protocol.ID) protocol.ID {
	if p == "" {
		return ReplicaProtocol
	}
	return p
}

func clientBurst(limit float64, burst int) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(limit))
}
