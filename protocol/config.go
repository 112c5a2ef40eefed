package protocol

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/pbftnode/pbftnode/wire"
)

// Signer signs a payload under a domain (crypto.Signer implements it).
// Ed25519 signing is deterministic, so the core stays deterministic.
type Signer interface {
	Sign(domain string, payload []byte) []byte
}

// Config configures a Replica. Zero values take the defaults below.
type Config struct {
	// ID is this replica's index in [0, N).
	ID uint32
	// N is the number of replicas; it tolerates F = (N-1)/3 faults.
	N int
	// Signer signs this replica's messages.
	Signer Signer
	// RelayCheck checks the signatures of COMMITs this replica counted on
	// their authors' sessions' word (VerifiedMessage.ByChannel) before a
	// Fetch answer relays them: one verdict per message, in order, true
	// when it verifies as its author's message. It must be a pure
	// function of its input (the core stays deterministic). Nil: such
	// COMMITs are never relayed, only checked ones and this replica's
	// own. replica.Driver sets it to its verifier's check (one batch
	// verification for a whole answer).
	RelayCheck func(signed []*wire.Signed) []bool

	// Epoch is the configuration epoch this replica runs (see epoch.go):
	// its messages carry it, and it shifts the primary rotation. Base is
	// the sequence the epoch starts after (0 for the genesis epoch, else a
	// checkpoint sequence): the replica starts with its low watermark and
	// last committed sequence there. BaseStateDigest is the state digest
	// at Base that the configuration certificate names.
	Epoch           uint64
	Base            uint64
	BaseStateDigest [32]byte

	// CheckpointInterval K: a checkpoint every K sequence numbers (128).
	CheckpointInterval uint64
	// WindowSize L: sequences in (low, low+L] are accepted (2K).
	WindowSize uint64
	// MaxBatchSize is the most requests in one pre-prepare (512).
	MaxBatchSize int
	// MaxBatchBytes bounds the encoded requests of one batch (4 MiB - 64 KiB).
	MaxBatchBytes int
	// BatchDelayTicks, when positive, bounds how long the primary holds a
	// partial batch back because MaxPartialInFlight batches are in flight
	// (0: until one of them commits).
	BatchDelayTicks int
	// MaxInFlight is how many sequences the primary keeps proposed but not
	// yet committed (8). Requests arriving meanwhile are batched.
	MaxInFlight int
	// MaxPartialInFlight is how many batches may be in flight when the
	// primary cuts a partial one (2). A full batch may use the whole
	// MaxInFlight pipeline; a partial one waits while this many are in
	// flight, so under load requests gather into larger batches, while a
	// lone request still goes out at once. Setting it to MaxInFlight cuts
	// every batch as soon as the pipeline has room.
	MaxPartialInFlight int
	// PipelinedBatchBelow: a partial batch is cut while others are in
	// flight (up to MaxPartialInFlight) only if the newest of them holds
	// fewer than this many requests (8). A larger one shows requests
	// arriving faster than batches commit: waiting for a commit then
	// gathers a larger batch, and each batch costs every replica the same
	// votes, signatures and synced append whatever its size, while a few
	// requests at a time (one client, two) still go out at once. Above
	// MaxBatchSize it never holds a partial batch back.
	PipelinedBatchBelow int
	// MaxLargeInFlightBytes bounds the bytes of large requests (over
	// 64 KiB each) in the batches the primary proposed and that have not
	// committed (1 MiB); one large request of any allowed size may always
	// be in flight alone. Small requests are not held back by it.
	MaxLargeInFlightBytes int
	// MaxPendingRequests bounds the requests a replica queues or tracks
	// (65536); beyond it new requests are dropped.
	MaxPendingRequests int
	// MaxPendingPerClient bounds one client's pending requests (64, the
	// executor's per-client window): a flooding client cannot push the
	// others' requests back by more than that.
	MaxPendingPerClient int
	// MaxPendingBytes bounds the encoded bytes of the requests a replica
	// tracks (64 MiB); beyond it new requests are dropped.
	MaxPendingBytes int
	// MaxPendingPerKey bounds the pending requests of one client key over
	// all its sessions (256: four sessions' windows), so fresh sessions of
	// a key buy it no more of the queue.
	MaxPendingPerKey int
	// MaxPendingBytesPerKey bounds the encoded bytes of one client key's
	// pending requests over all its sessions (8 MiB). A key with nothing
	// pending may always have one request in flight, whatever its size.
	MaxPendingBytesPerKey int

	// RetransmitTicks: after this many ticks without progress while
	// agreement is open, a replica resends its messages for it (150: longer
	// than the view-change timeout, so a primary that withholds is
	// suspected before catch-up papers over it).
	RetransmitTicks int

	// MaxServeBytesPerPeer bounds the batch bytes this replica sends one
	// replica in answer to its BATCH-REQUESTs and Fetches per
	// RetransmitTicks (2 x MaxBatchBytes); MaxServeRequestsPerPeer the
	// BATCH-REQUESTs it answers per period (64). See serve.go.
	MaxServeBytesPerPeer    int
	MaxServeRequestsPerPeer int

	// ViewChangeTimeoutTicks: a backup with a pending request suspects
	// the primary when nothing executes for this long (100 = 1 s at the
	// default tick); doubled on each consecutive view change without
	// progress, up to 64x.
	ViewChangeTimeoutTicks int

	// Quorum overrides, for the simulator's planted-bug tests only (they
	// show the checkers catch an unsafe configuration); 0 means the safe
	// value. PreparedVotes: matching prepares that make a slot prepared
	// (Quorum-1 = 2f). CommitVotes: matching commits that make it
	// committed (Quorum = 2f+1). ViewChangeQuorum: VIEW-CHANGEs a NEW-VIEW
	// is built from and checked against (Quorum).
	PreparedVotes    int
	CommitVotes      int
	ViewChangeQuorum int

	// Logger receives debug logs of dropped messages; nil discards them.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultCheckpointInterval = 128
	DefaultMaxBatchSize       = 512
	// maxRelayedRequests bounds the client requests a backup relays to
	// a new primary at once: a quarter of the runtime's 1,024-frame
	// queue to a peer.
	maxRelayedRequests         = 256
	DefaultMaxBatchBytes       = 4<<20 - 64<<10
	DefaultMaxInFlight         = 8
	DefaultMaxPartialInFlight  = 2
	DefaultPipelinedBatchBelow = 8
	DefaultMaxPendingRequests  = 65536
	DefaultMaxPendingPerClient = 64
	// DefaultMaxPendingBytes is 64 MiB.
	DefaultMaxPendingBytes  = 64 << 20
	DefaultMaxPendingPerKey = 256
	// DefaultMaxLargeInFlightBytes is 1 MiB.
	DefaultMaxLargeInFlightBytes = 1 << 20
	// DefaultMaxServeRequestsPerPeer is how many BATCH-REQUESTs of one
	// replica are answered per RetransmitTicks.
	DefaultMaxServeRequestsPerPeer = 64
	// DefaultMaxPendingBytesPerKey is 8 MiB: two requests of the largest
	// size, or hundreds of thousands of small ones.
	DefaultMaxPendingBytesPerKey = 8 << 20
)

func (c Config) withDefaults() Config {
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.WindowSize == 0 {
		c.WindowSize = 2 * c.CheckpointInterval
	}
	if c.MaxBatchSize == 0 {
		c.MaxBatchSize = DefaultMaxBatchSize
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxPartialInFlight == 0 {
		c.MaxPartialInFlight = min(DefaultMaxPartialInFlight, c.MaxInFlight)
	}
	if c.PipelinedBatchBelow == 0 {
		c.PipelinedBatchBelow = DefaultPipelinedBatchBelow
	}
	if c.MaxLargeInFlightBytes == 0 {
		c.MaxLargeInFlightBytes = DefaultMaxLargeInFlightBytes
	}
	if c.MaxPendingRequests == 0 {
		c.MaxPendingRequests = DefaultMaxPendingRequests
	}
	if c.MaxPendingPerClient == 0 {
		c.MaxPendingPerClient = DefaultMaxPendingPerClient
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.MaxPendingPerKey == 0 {
		c.MaxPendingPerKey = DefaultMaxPendingPerKey
	}
	if c.MaxPendingBytesPerKey == 0 {
		c.MaxPendingBytesPerKey = DefaultMaxPendingBytesPerKey
	}
	if c.RetransmitTicks == 0 {
		c.RetransmitTicks = DefaultRetransmitTicks
	}
	if c.MaxServeBytesPerPeer == 0 {
		c.MaxServeBytesPerPeer = 2 * c.MaxBatchBytes
	}
	if c.MaxServeRequestsPerPeer == 0 {
		c.MaxServeRequestsPerPeer = DefaultMaxServeRequestsPerPeer
	}
	if c.PreparedVotes == 0 {
		c.PreparedVotes = Quorum(c.N) - 1
	}
	if c.CommitVotes == 0 {
		c.CommitVotes = Quorum(c.N)
	}
	if c.ViewChangeQuorum == 0 {
		c.ViewChangeQuorum = Quorum(c.N)
	}
	if c.ViewChangeTimeoutTicks == 0 {
		c.ViewChangeTimeoutTicks = DefaultViewChangeTimeoutTicks
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.N < 4:
		return fmt.Errorf("protocol: %d replicas tolerate no Byzantine fault; need at least 4", c.N)
	case int64(c.ID) >= int64(c.N):
		return fmt.Errorf("protocol: replica id %d outside [0, %d)", c.ID, c.N)
	case c.Signer == nil:
		return errors.New("protocol: no signer")
	case c.Base%c.CheckpointInterval != 0:
		return fmt.Errorf("protocol: epoch base %d is not a multiple of the checkpoint interval %d", c.Base, c.CheckpointInterval)
	case c.WindowSize < c.CheckpointInterval:
		return fmt.Errorf("protocol: window %d smaller than checkpoint interval %d", c.WindowSize, c.CheckpointInterval)
	case c.MaxBatchSize < 1 || c.MaxInFlight < 1 || c.BatchDelayTicks < 0:
		return errors.New("protocol: batch size and in-flight limit must be positive, batch delay not negative")
	case c.MaxPendingRequests < 1 || c.MaxPendingPerClient < 1 || c.MaxPendingPerKey < c.MaxPendingPerClient:
		return fmt.Errorf("protocol: pending limits must be positive, per key (%d) at least per client (%d)", c.MaxPendingPerKey, c.MaxPendingPerClient)
	case c.MaxPendingBytesPerKey < 1 || c.MaxPendingBytes < c.MaxPendingBytesPerKey:
		return fmt.Errorf("protocol: pending byte limits must be positive, in all (%d) at least per key (%d)", c.MaxPendingBytes, c.MaxPendingBytesPerKey)
	case c.MaxLargeInFlightBytes < 1:
		return errors.New("protocol: large in-flight bound must be positive")
	case c.MaxServeBytesPerPeer < c.MaxBatchBytes || c.MaxServeRequestsPerPeer < 1:
		return fmt.Errorf("protocol: serve budget %d bytes below the batch limit %d, or no requests", c.MaxServeBytesPerPeer, c.MaxBatchBytes)
	case c.MaxPartialInFlight < 1 || c.MaxPartialInFlight > c.MaxInFlight:
		return fmt.Errorf("protocol: partial in-flight limit %d outside [1, max in flight %d]", c.MaxPartialInFlight, c.MaxInFlight)
	case c.PipelinedBatchBelow < 1:
		return fmt.Errorf("protocol: pipelined batch bound %d is not positive", c.PipelinedBatchBelow)
	}
	return nil
}

// FaultTolerance returns F, the number of Byzantine replicas n tolerates.
func FaultTolerance(n int) int { return (n - 1) / 3 }

// Quorum returns the size of a quorum among n replicas: any two quorums
// intersect in at least F+1 replicas, so in at least one correct one.
// For n = 3F+1 it is 2F+1.
func Quorum(n int) int {
	f := FaultTolerance(n)
	return (n + f + 2) / 2
}

// Primary returns the primary of view v among n replicas in epoch 0 (see
// PrimaryIn for the others).
func Primary(view uint64, n int) uint32 { return PrimaryIn(0, view, n) }
