package benchmarks

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
)

// Attacking-client kinds (`pbftnode attack --kind`): each is one faulty
// client of issue 15, as a testing instrument. The bench scenarios of the
// same names run them in a process of their own.
const (
	// AttackBigBurst: the testnet's client key sends bursts of 300
	// properly signed 1 MiB puts to the target replica, as fast as the
	// stream takes them; a fresh burst (new sessions, new request numbers)
	// every 1/Rate seconds (default 5 s).
	AttackBigBurst = "big-burst"
	// AttackClientFlood: the testnet's client key opens a new session (a
	// new client id: the key plus 8 fresh bytes) up to Rate times a
	// second (default 1000; a stream open is a round trip, so one
	// connection achieves a few hundred), each a new stream to every
	// replica carrying one signed 16-byte put.
	AttackClientFlood = "client-flood"
	// AttackGarbageClient: 8 fresh keys no replica has seen (one replaced
	// by a new one every second) send Rate frames a second in all (default
	// 100000, about 5 MB/s), alternately tiny random garbage and
	// well-formed requests with random signatures, spread over every
	// replica, in writes of 1024 frames (about 100 KB: bursts that fill
	// a shared inbound queue).
	AttackGarbageClient = "garbage-client"
	// AttackSlowloris: 32 streams to the target replica each send a frame
	// prefix announcing 4 MiB and then 4 MiB minus one byte of it, and
	// stall; a stream the replica resets is reopened. Writes are bounded
	// to Rate bytes a second in all (default 32 MiB/s).
	AttackSlowloris = "slowloris"
	// AttackNonReading: the testnet's client key puts a 1 MiB value
	// (reading those replies), then sends every replica a get for it and
	// 1000 replays of that get, at most Rate frames a second (default
	// 1000), and never reads again.
	AttackNonReading = "non-reading-client"
)

// AttackKinds lists the attack kinds.
var AttackKinds = []string{AttackBigBurst, AttackClientFlood, AttackGarbageClient, AttackSlowloris, AttackNonReading}

// defaultAttackRate is each kind's rate bound when AttackConfig.Rate is 0,
// in the kind's unit (see the kind constants).
var defaultAttackRate = map[string]float64{
	AttackBigBurst:      0.2,
	AttackClientFlood:   1000,
	AttackGarbageClient: 100000,
	AttackSlowloris:     32 << 20,
	AttackNonReading:    1000,
}

// AttackConfig configures one attacking client.
type AttackConfig struct {
	// Dir is a testnet directory: client.json (cluster ID, replicas) and
	// client.key, the key the single-key attacks use.
	Dir string
	// Kind is one of AttackKinds.
	Kind string
	// Rate bounds the attack, in the kind's unit (0: the kind's default).
	Rate float64
	// Target is the replica the single-replica attacks (big-burst,
	// slowloris) aim at (default 0, the primary of view 0).
	Target int
	// Ready, when not nil, is called once the attack is prepared (keys
	// made, connections open, frames signed), on RunAttack's goroutine,
	// before RunAttack returns.
	Ready func()
	// Start, when not nil, delays the attack until it is closed.
	Start <-chan struct{}
	// Logger receives progress and errors (default: discarded).
	Logger *slog.Logger
}

// AttackReport is what an attack did; `pbftnode attack` prints it as JSON
// when it ends.
type AttackReport struct {
	Kind string  `json:"kind"`
	Rate float64 `json:"rate"`
	// Frames and Bytes count what was written to replicas (for slowloris,
	// partial frames), length prefixes included.
	Frames int64 `json:"frames"`
	Bytes  int64 `json:"bytes"`
	// Errors counts failed dials, stream opens and writes (a stream the
	// replica reset is one); FirstError is the first of them.
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Streams counts the streams opened, Sessions the client ids used,
	// Keys the keys (libp2p identities) used.
	Streams  int64 `json:"streams"`
	Sessions int64 `json:"sessions,omitempty"`
	Keys     int64 `json:"keys"`
	// Replies counts the reply frames read (the kinds that read any).
	Replies int64 `json:"replies,omitempty"`
	// AttackS is how long the attack ran (from Start to the end).
	AttackS float64 `json:"attack_s"`
}

// ErrAttackConfig marks an invalid attack configuration.
var ErrAttackConfig = errors.New("invalid attack configuration")

// attackTally counts what an attack did; safe for concurrent use.
type attackTally struct {
	frames, bytes, errors, streams, sessions, keys, replies atomic.Int64

	mu       sync.Mutex
	firstErr error
}

func (t *attackTally) fail(err error) {
	t.errors.Add(1)
	t.mu.Lock()
	if t.firstErr == nil {
		t.firstErr = err
	}
	t.mu.Unlock()
}

// attacker is the state one attack shares: the testnet's cluster, the
// client key it wrote, and the tally.
type attacker struct {
	cfg       AttackConfig
	clusterID string
	members   []p2p.Member
	key       ed25519.PrivateKey
	tally     attackTally
	log       *slog.Logger
	// stopping is set when the attack ends: the errors of closing its
	// own streams are not counted.
	stopping atomic.Bool

	rngMu sync.Mutex
	rng   *rand.Rand
}

// RunAttack runs one attacking client until ctx ends and reports what it
// did. It returns an error only when the attack could not be prepared.
func RunAttack(ctx context.Context, cfg AttackConfig) (AttackReport, error) {
	a, err := newAttacker(cfg)
	if err != nil {
		return AttackReport{Kind: cfg.Kind}, err
	}
	var run func(context.Context, *attackTimer) error
	switch cfg.Kind {
	case AttackBigBurst:
		run = a.bigBurst
	case AttackClientFlood:
		run = a.clientFlood
	case AttackGarbageClient:
		run = a.garbageClient
	case AttackSlowloris:
		run = a.slowloris
	case AttackNonReading:
		run = a.nonReading
	}
	timer := &attackTimer{a: a}
	err = run(ctx, timer)
	return a.report(timer), err
}

func newAttacker(cfg AttackConfig) (*attacker, error) {
	if !slices.Contains(AttackKinds, cfg.Kind) {
		return nil, fmt.Errorf("%w: kind %q: want one of %v", ErrAttackConfig, cfg.Kind, AttackKinds)
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("%w: negative rate %v", ErrAttackConfig, cfg.Rate)
	}
	if cfg.Rate == 0 {
		cfg.Rate = defaultAttackRate[cfg.Kind]
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cf, members, err := node.ReadClientFile(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("attack: %w", err)
	}
	a := &attacker{cfg: cfg, clusterID: cf.ClusterID, log: cfg.Logger, members: members,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x61747461636b))}
	if cfg.Target < 0 || cfg.Target >= len(a.members) {
		return nil, fmt.Errorf("%w: target replica %d of %d", ErrAttackConfig, cfg.Target, len(a.members))
	}
	if a.key, err = keyfile.Read(cf.KeyPath(cfg.Dir)); err != nil {
		return nil, fmt.Errorf("attack: client key: %w", err)
	}
	return a, nil
}

// attackTimer marks when the attack proper began (after preparation).
type attackTimer struct {
	a       *attacker
	started time.Time
}

// begin reports the attack ready and waits for the start signal. It
// returns false if ctx ended first.
func (t *attackTimer) begin(ctx context.Context) bool {
	if t.a.cfg.Ready != nil {
		t.a.cfg.Ready()
	}
	if t.a.cfg.Start != nil {
		select {
		case <-t.a.cfg.Start:
		case <-ctx.Done():
			return false
		}
	}
	t.started = time.Now()
	return ctx.Err() == nil
}

func (a *attacker) report(t *attackTimer) AttackReport {
	r := AttackReport{
		Kind: a.cfg.Kind, Rate: a.cfg.Rate,
		Frames: a.tally.frames.Load(), Bytes: a.tally.bytes.Load(), Errors: a.tally.errors.Load(),
		Streams: a.tally.streams.Load(), Sessions: a.tally.sessions.Load(), Keys: a.tally.keys.Load(),
		Replies: a.tally.replies.Load(),
	}
	if !t.started.IsZero() {
		r.AttackS = time.Since(t.started).Seconds()
	}
	a.tally.mu.Lock()
	if a.tally.firstErr != nil {
		r.FirstError = a.tally.firstErr.Error()
	}
	a.tally.mu.Unlock()
	return r
}

// randBytes returns n bytes from the attacker's generator.
func (a *attacker) randBytes(n int) []byte {
	a.rngMu.Lock()
	defer a.rngMu.Unlock()
	b := make([]byte, 0, n+8)
	for len(b) < n {
		b = binary.LittleEndian.AppendUint64(b, a.rng.Uint64())
	}
	return b[:n]
}

// randIntN returns a number in [0, n).
func (a *attacker) randIntN(n int) int {
	a.rngMu.Lock()
	defer a.rngMu.Unlock()
	return a.rng.IntN(n)
}

// newHost makes a libp2p host with key, as the client library's transport
// would (TCP, Noise, yamux), but without its queues and its good manners:
// the attacks write on raw streams. It knows every replica's address.
func (a *attacker) newHost(key ed25519.PrivateKey) (host.Host, error) {
	lk, err := identity.LibP2PPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("attack: %w", err)
	}
	h, err := libp2p.New(append(p2p.TransportOptions(),
		libp2p.Identity(lk),
		libp2p.NoListenAddrs,
		libp2p.ResourceManager(&network.NullResourceManager{}))...,
	)
	if err != nil {
		return nil, fmt.Errorf("attack: libp2p host: %w", err)
	}
	for _, m := range a.members {
		if m.Addr != nil {
			h.Peerstore().AddAddr(m.ID, m.Addr, time.Hour)
		}
	}
	a.tally.keys.Add(1)
	return h, nil
}

// streamTimeout bounds one dial and stream negotiation.
const streamTimeout = 5 * time.Second

// openStream opens a ClientProtocol stream from h to replica index.
func (a *attacker) openStream(parent context.Context, h host.Host, index int) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(parent, streamTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, a.members[index].ID, p2p.ClientProtocol)
	if err != nil {
		err = fmt.Errorf("attack: stream to replica %d: %w", index, err)
		if parent.Err() == nil {
			a.fail(err)
		}
		return nil, err
	}
	a.tally.streams.Add(1)
	return s, nil
}

// writeFrame writes frame with its length prefix in one write and counts
// it.
func (a *attacker) writeFrame(s network.Stream, frame []byte) error {
	return a.writeFrames(s, [][]byte{frame})
}

// writeFrames writes frames, each with its length prefix, in one write
// (as a peer's transport coalesces what it has queued) and counts them.
func (a *attacker) writeFrames(s network.Stream, frames [][]byte) error {
	size := 0
	for _, f := range frames {
		size += len(f) + binary.MaxVarintLen64
	}
	buf := make([]byte, 0, size)
	for _, f := range frames {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	if _, err := s.Write(buf); err != nil {
		err = fmt.Errorf("attack: write: %w", err)
		a.fail(err)
		return err
	}
	a.tally.frames.Add(int64(len(frames)))
	a.tally.bytes.Add(int64(len(buf)))
	return nil
}

// session is one client id of a key and the signer of its requests.
type session struct {
	id     []byte
	signer *crypto.Signer
	next   uint64
}

// newSession makes a fresh client id (key plus 8 random bytes) for key.
func (a *attacker) newSession(key ed25519.PrivateKey) (*session, error) {
	id, err := crypto.ClientID(key.Public().(ed25519.PublicKey), a.randBytes(8))
	if err != nil {
		return nil, fmt.Errorf("attack: %w", err)
	}
	a.tally.sessions.Add(1)
	return &session{id: id, signer: crypto.NewSigner(key, a.clusterID), next: uint64(time.Now().UnixNano())}, nil
}

// request encodes and signs the session's next request of op as a
// ClientFrame.
func (s *session) request(op []byte) []byte {
	payload := requestPayload(s.id, s.next, op)
	s.next++
	return clientFrame(payload, s.signer.Sign(crypto.DomainClientRequest, payload))
}

// requestPayload encodes a Request, the payload a client signs.
func requestPayload(id []byte, n uint64, op []byte) []byte {
	payload, err := proto.Marshal(&wire.Request{ClientId: id, RequestNumber: n, Operation: op})
	if err != nil {
		panic(fmt.Sprintf("marshal a request: %v", err)) // cannot fail for these fields
	}
	return payload
}

// clientFrame wraps a request payload and its signature in a ClientFrame.
func clientFrame(payload, sig []byte) []byte {
	frame, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{
		Request: &wire.Signed{Payload: payload, Signature: sig}}})
	if err != nil {
		panic(fmt.Sprintf("marshal a client frame: %v", err)) // cannot fail for these fields
	}
	return frame
}

// readReplies reads and counts reply frames from s until it fails.
func (a *attacker) readReplies(s network.Stream) {
	r := bufio.NewReader(s)
	for {
		if _, err := p2p.ReadFrame(r, p2p.DefaultMaxFrameSize*2); err != nil {
			return
		}
		a.tally.replies.Add(1)
	}
}

// fail counts an error, unless the attack is ending.
func (a *attacker) fail(err error) {
	if !a.stopping.Load() {
		a.tally.fail(err)
	}
}

// closeOnDone closes h when ctx ends, which resets its streams and
// unblocks their writes, or when the returned function is called.
func (a *attacker) closeOnDone(ctx context.Context, h host.Host) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			a.stopping.Store(true)
		case <-done:
		}
		_ = h.Close()
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}
