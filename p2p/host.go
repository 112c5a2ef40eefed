package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

// Stream protocols spoken by pbftnode hosts.
const (
	// ReplicaProtocol carries frames from one replica to another. Each
	// replica writes only on streams it opened; inbound streams are read.
	ReplicaProtocol = protocol.ID("/pbftnode/replica/1")
	// RaftProtocol is ReplicaProtocol's counterpart in the Raft mode, so
	// that replicas of the two modes never mistake each other's frames.
	RaftProtocol = protocol.ID("/pbftnode/raft/1")
	// ClientProtocol carries client frames to a replica and the replica's
	// replies back on the same stream, which the client opened.
	ClientProtocol = protocol.ID("/pbftnode/client/1")
)

// Connection manager watermarks. Members are protected from trimming, so
// these only bound how many client connections a replica keeps.
const (
	connLowWater  = 128
	connHighWater = 512
	connGrace     = time.Minute
	memberTag     = "pbftnode-member"
)

// Frame is one received frame.
type Frame struct {
	From      peer.ID // the Noise-authenticated sender
	FromIndex int     // the sender's member index, or -1 for a client
	// FromKey is From's Ed25519 public key (identity.Ed25519KeyOfPeerID,
	// read once per stream, shared by its frames; nil if From inlines
	// none): the key the session authenticated.
	FromKey []byte
	Data    []byte // the frame body, owned by the receiver
}

// Host is a pbftnode libp2p host. Its methods are safe for concurrent use.
type Host struct {
	host   host.Host
	logger *slog.Logger

	self         int
	clientHost   bool
	replicaProto protocol.ID // ReplicaProtocol or RaftProtocol
	clientRate   float64     // client frames per second, 0: unlimited
	clientBurst  int
	maxFrameSize int
	queueSize    int
	writeTimeout time.Duration
	dialTimeout  time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	rng          *lockedRand
	// members is the current member set (members.go): replaced, never
	// modified, by SetMembers under membersMu, read without locks.
	members   atomic.Pointer[memberSet]
	membersMu sync.Mutex

	clientAllowlist peerSet // replica host: the clients allowed to connect; nil: any client

	sched   *scheduler // replica host: every inbound replica and client frame
	faulty  *faultBook
	partial *partialBudget // replica host: bytes of client frames still arriving
	// streamGate limits how fast each client key opens ClientProtocol
	// streams; nil: unlimited (and on a client host).
	streamGate *streamGate
	deadline   frameDeadline
	replies    chan Frame  // client host: the replicas' replies
	onReply    func(Frame) // client host: Config.OnReply, or nil

	replyQueueBytes int
	clientByteRate  int // client key read pacing, bytes per second; <= 0: unpaced
	clientByteBurst int

	clientsMu sync.Mutex
	clients   map[peer.ID]*clientSession

	stats counters

	ctx    context.Context
	cancel context.CancelFunc

	lifeMu   sync.Mutex
	closing  bool
	closeErr error          // written before closed is closed
	closed   chan struct{}  // closed when the first Close call returns
	wg       sync.WaitGroup // every goroutine and stream handler of the host
}

// New builds the host, starts listening on cfg.ListenAddr and starts one
// background link per peer: a replica host maintains a ReplicaProtocol
// stream to every other member, a client host a ClientProtocol stream to
// every member. It does not wait for any peer to be reachable.
func New(cfg Config) (*Host, error) {
	h, err := newHost(cfg)
	if err != nil {
		return nil, err
	}
	if err := h.start(cfg); err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// start creates the libp2p host, registers handlers and starts the links.
func (h *Host) start(cfg Config) error {
	resources, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()), rcmgr.WithMetricsDisabled())
	if err != nil {
		return fmt.Errorf("p2p: resource manager: %w", err)
	}
	conns, err := connmgr.NewConnManager(connLowWater, connHighWater, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		return fmt.Errorf("p2p: connection manager: %w", err)
	}
	gater := &membershipGater{
		isMember:       h.isMember,
		clientsAllowed: cfg.ClientsAllowed,
		stats:          &h.stats,
		logger:         h.logger,
	}
	gater.clientAllowlist = h.clientAllowlist
	listen := libp2p.NoListenAddrs
	if cfg.ListenAddr != "" {
		listen = libp2p.ListenAddrStrings(cfg.ListenAddr)
	}
	h.host, err = libp2p.New(append(TransportOptions(),
		libp2p.Identity(cfg.PrivateKey),
		listen,
		libp2p.ResourceManager(resources),
		libp2p.ConnectionManager(conns),
		libp2p.ConnectionGater(gater),
		libp2p.UserAgent("pbftnode"))...,
	)
	if err != nil {
		_ = resources.Close()
		_ = conns.Close()
		return fmt.Errorf("p2p: libp2p host: %w", err)
	}
	if !h.clientHost {
		h.host.SetStreamHandler(h.replicaProto, h.handleReplicaStream)
		if cfg.ClientsAllowed {
			h.host.SetStreamHandler(ClientProtocol, h.handleClientStream)
		}
	}
	set := h.members.Load()
	for _, m := range set.byIndex {
		if int64(m.Index) == int64(h.self) {
			continue
		}
		if err := h.addLink(set, m); err != nil {
			return err
		}
	}
	slices.Sort(set.linkOrder)
	for _, index := range set.linkOrder {
		if !h.enter() {
			return errors.New("p2p: host closed while starting")
		}
		go set.links[index].run()
	}
	return nil
}

// TransportOptions are the libp2p options every pbftnode host uses: TCP,
// Noise and yamux only, no relay, ping, identify address discovery or
// libp2p metrics. A tool that speaks the pbftnode protocols with a bare
// libp2p host (the benchmark's attacker) starts from them too.
func TransportOptions() []libp2p.Option {
	return []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.Ping(false),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.DisableMetrics(),
	}
}

// SetMemberAddr replaces the known address of member index and makes its
// link redial now if it is waiting to reconnect. addr may end in /p2p/<ID>
// if that ID is the member's. It errors for an unknown index or a
// mismatched ID.
func (h *Host) SetMemberAddr(index uint32, addr multiaddr.Multiaddr) error {
	set := h.members.Load()
	m, ok := set.byIndex[index]
	if !ok {
		return fmt.Errorf("p2p: set member address: unknown member %d", index)
	}
	if m.ID == "" || addr == nil {
		return fmt.Errorf("p2p: set member address: member %d: empty address", index)
	}
	m.Addr = addr
	if err := h.addrOf(m); err != nil {
		return err
	}
	if l, ok := set.links[index]; ok {
		l.wakeUp()
	}
	return nil
}

// ID returns the host's peer ID.
func (h *Host) ID() peer.ID { return h.host.ID() }

// Addrs returns the addresses the host listens on (none for a client host).
func (h *Host) Addrs() []multiaddr.Multiaddr { return h.host.Addrs() }

// NextFrames waits until a frame is queued, then appends up to limit of
// the queued frames, in fair-scheduling order, to into and returns it.
// Frames from members on the replica protocol carry the sender's member
// index (authenticated by the Noise session) in FromIndex; frames from
// clients on ClientProtocol carry FromIndex = -1. Each source (every
// member, every established client key, and all other keys together) has
// its own bounded queue; see InboundLimits for the scheduling. ok is
// false, with nothing taken, once ctx ends, or the host is closed and
// nothing is left queued. Safe for concurrent use by many workers.
func (h *Host) NextFrames(ctx context.Context, into []Frame, limit int) (_ []Frame, ok bool) {
	return h.sched.next(ctx, h.ctx.Done(), into, max(1, limit))
}

// MarkClientEstablished gives client its own inbound queue from now on:
// the node calls it when the key has earned it (a request of its
// executed). Keys not established share one newcomer queue. The host
// remembers InboundLimits.EstablishedClients keys, least recently active
// forgotten first. SendToClient marks the key it sends to.
func (h *Host) MarkClientEstablished(client peer.ID) {
	h.sched.mu.Lock()
	h.sched.established.add(client)
	h.sched.mu.Unlock()
}

// Replies delivers, on a client host, the frames replicas wrote back on the
// client's streams, with FromIndex = the replica's member index, unless
// Config.OnReply takes them. The channel is closed when Close returns.
func (h *Host) Replies() <-chan Frame { return h.replies }

// Send enqueues frame on member to's bounded queue, from a replica host. It
// returns false, and counts the drop, if the queue is full, to is unknown or
// self, the frame exceeds MaxFrameSize, this is a client host, or the host
// is closed. The caller must not modify frame after a successful Send.
// Delivery is best effort: a frame in flight when a stream breaks is lost.
func (h *Host) Send(to uint32, frame []byte) bool {
	if h.clientHost {
		h.stats.droppedNoRoute.Add(1)
		return false
	}
	return h.enqueue(to, frame)
}

// Broadcast calls Send for every member but self.
func (h *Host) Broadcast(frame []byte) {
	for _, index := range h.members.Load().linkOrder {
		h.Send(index, frame)
	}
}

// SendToReplica enqueues frame for member to on a client host's
// ClientProtocol stream, with the same contract as Send.
func (h *Host) SendToReplica(to uint32, frame []byte) bool {
	if !h.clientHost {
		h.stats.droppedNoRoute.Add(1)
		return false
	}
	return h.enqueue(to, frame)
}

func (h *Host) enqueue(to uint32, frame []byte) bool {
	l, ok := h.members.Load().links[to]
	if !ok || h.ctx.Err() != nil {
		h.stats.droppedNoRoute.Add(1)
		return false
	}
	if len(frame) > h.maxFrameSize {
		h.stats.rejectedOversized.Add(1)
		h.logger.Error("p2p: outbound frame exceeds size limit", "to", to, "length", len(frame), "limit", h.maxFrameSize)
		return false
	}
	if !l.queue.push(frame) {
		h.stats.droppedQueueFull.Add(1)
		h.logger.Debug("p2p: peer queue full; frame dropped", "to", to, "length", len(frame))
		return false
	}
	return true
}

// enter registers a goroutine or stream handler with the host. It returns
// false once Close has begun; the caller must then not proceed. A true
// return must be paired with h.wg.Done.
func (h *Host) enter() bool {
	h.lifeMu.Lock()
	defer h.lifeMu.Unlock()
	if h.closing {
		return false
	}
	h.wg.Add(1)
	return true
}

// Close stops all links and client sessions, closes every stream and the
// libp2p host, waits for the host's goroutines and closes the inbound
// channels. It is idempotent; later calls return the first call's result.
func (h *Host) Close() error {
	h.lifeMu.Lock()
	if h.closing {
		h.lifeMu.Unlock()
		<-h.closed
		return h.closeErr
	}
	h.closing = true
	h.lifeMu.Unlock()

	h.cancel()
	var err error
	if h.host != nil {
		if cerr := h.host.Close(); cerr != nil {
			err = fmt.Errorf("p2p: close libp2p host: %w", cerr)
		}
	}
	h.wg.Wait()
	close(h.replies)
	h.closeErr = err
	close(h.closed)
	return err
}

// deliverReply hands a replica's reply to Config.OnReply, or else to the
// Replies channel without blocking; when the channel is full the frame is
// dropped and counted.
func (h *Host) deliverReply(f Frame) {
	h.stats.framesReceived.Add(1)
	h.stats.bytesReceived.Add(uint64(len(f.Data)))
	if h.onReply != nil {
		h.onReply(f)
		return
	}
	select {
	case h.replies <- f:
	default:
		h.stats.droppedInboundFull.Add(1)
		h.logger.Debug("p2p: inbound buffer full; frame dropped", "from_index", f.FromIndex, "length", len(f.Data))
	}
}

// deliverInbound queues a frame from a replica or a client on its
// source's inbound queue; a full queue drops it (counted by class).
func (h *Host) deliverInbound(f Frame) {
	h.stats.framesReceived.Add(1)
	h.stats.bytesReceived.Add(uint64(len(f.Data)))
	if !h.sched.push(f) {
		h.logger.Debug("p2p: inbound queue of the sender full or sender backed off; frame dropped",
			"from_index", f.FromIndex, "peer", f.From, "length", len(f.Data))
	}
}

// ConnectedPeers returns how many other members this host has a live
// connection to (for readiness and status).
func (h *Host) ConnectedPeers() int {
	n := 0
	for _, m := range h.members.Load().byIndex {
		if int64(m.Index) != int64(h.self) && h.host.Network().Connectedness(m.ID) == network.Connected {
			n++
		}
	}
	return n
}
