package raftmode

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
)

// LogStorage is the durable raft log: raft.Storage plus the writes the
// Core makes (raftlog.Log, in storage/raftlog, implements it on goleveldb).
type LogStorage interface {
	raft.Storage
	// Save durably persists one Ready's snapshot, entries and hard state,
	// in that order and in one write. The Core calls it before handing the
	// Ready's messages out, except a leader's appends and heartbeats,
	// which may leave while it runs (see Core.Process).
	Save(hs *raftpb.HardState, entries []*raftpb.Entry, snap *raftpb.Snapshot) error
	// CreateSnapshot records snapshot metadata at index.
	CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error)
	// Compact discards the entries below compactIndex.
	Compact(compactIndex uint64) error
}

// Defaults for zero Config fields.
const (
	DefaultElectionTicks      = 100 // 1 s at a 10 ms tick
	DefaultHeartbeatTicks     = 10
	DefaultMaxBatchSize       = 512
	DefaultMaxPendingRequests = 65536
	DefaultMaxInflightMsgs    = 256
	DefaultMaxSizePerMsg      = 1 << 20
	DefaultSnapshotInterval   = 8192
	// DefaultSnapshotCatchUpEntries is etcd's SnapshotCatchUpEntries.
	DefaultSnapshotCatchUpEntries = 5000
	DefaultMaxEntryBytes          = 1 << 20
	// DefaultMaxPendingBytes is 64 MiB, DefaultMaxPendingBytesPerKey 8 MiB.
	DefaultMaxPendingBytes       = 64 << 20
	DefaultMaxPendingPerKey      = 256
	DefaultMaxPendingBytesPerKey = 8 << 20
	// DefaultMaxPendingReads and DefaultMaxPendingReadBytes bound the
	// leader's reads waiting for their read index (16 MiB).
	DefaultMaxPendingReads     = 65536
	DefaultMaxPendingReadBytes = 16 << 20
	// DefaultReadIndexesInFlight bounds the ReadIndex rounds the leader
	// has unconfirmed at once.
	DefaultReadIndexesInFlight = 4
)

// Config configures a Core.
type Config struct {
	// Index is this replica's index (its raft ID is Index+1); N is the
	// number of replicas (n = 2f+1).
	Index uint32
	N     int
	// Spare starts the replica outside the configuration (its Index need
	// not be below N): its log starts empty, and it joins when the leader,
	// having added it as a learner, sends it a snapshot.
	Spare bool
	// Log is the replica's raft log; Executor applies committed entries.
	// Both write to the replica's database.
	Log      LogStorage
	Executor *execution.Executor
	// Rand randomises election timeouts (required: seed it from
	// crypto/rand in production and from the seed in the simulator).
	Rand *rand.Rand
	// ElectionTicks is the base election timeout: a follower that hears
	// nothing from a leader for a random time in [E, 2E) ticks campaigns.
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval.
	HeartbeatTicks int
	// MaxBatchSize bounds the requests in one log entry, MaxEntryBytes
	// its encoded size (a larger single request is refused): one entry
	// plus MaxSizePerMsg must fit in a transport frame.
	MaxBatchSize  int
	MaxEntryBytes int
	// MaxPendingRequests bounds requests waiting to be proposed.
	MaxPendingRequests int
	// MaxPendingBytes bounds their encoded bytes (64 MiB);
	// MaxPendingPerKey and MaxPendingBytesPerKey bound those of one client
	// key over all its sessions (256 requests, 8 MiB; a key with nothing
	// pending may always queue one request), as the PBFT core does.
	MaxPendingBytes       int
	MaxPendingPerKey      int
	MaxPendingBytesPerKey int
	// MaxInflightMsgs bounds append messages in flight to one follower;
	// MaxSizePerMsg bounds one append message's entries (bytes), and so
	// must stay below the transport's frame limit.
	MaxInflightMsgs int
	MaxSizePerMsg   uint64
	// SnapshotInterval: the Core snapshots the application every
	// SnapshotInterval applied entries (at indexes that are multiples of
	// it, the same on every replica) and compacts the log below the
	// previous snapshot, so a follower less than one interval behind still
	// catches up from the log.
	SnapshotInterval uint64
	// SnapshotCatchUpEntries: compaction also keeps at least this many
	// entries behind the newest snapshot (as etcd does), so a follower
	// whose snapshot install took longer than a few snapshot intervals
	// (a large state, a short interval) continues from the log instead of
	// needing another snapshot; 0 means DefaultSnapshotCatchUpEntries. The
	// entries are on disk (storage/raftlog), not in memory.
	SnapshotCatchUpEntries uint64
	// MaxPendingReads and MaxPendingReadBytes bound the reads waiting for
	// an answer (count and encoded bytes); ReadTimeoutTicks is how long a
	// read may wait for its read index to be confirmed and applied before
	// it fails (default: ElectionTicks).
	MaxPendingReads     int
	MaxPendingReadBytes int
	ReadTimeoutTicks    int
	// ReadIndexesInFlight bounds the ReadIndex rounds (one per Process
	// with reads queued, shared by all of them) the leader has
	// unconfirmed at once; reads arriving while that many are out wait
	// for the next. More than one lets a read that arrives just after a
	// round started go out in the next Process instead of waiting a whole
	// round trip (default DefaultReadIndexesInFlight).
	ReadIndexesInFlight int
	Logger              *slog.Logger
}

func (c *Config) applyDefaults() error {
	switch {
	case c.N < 1:
		return fmt.Errorf("raftmode: %d replicas", c.N)
	case int(c.Index) >= c.N && !c.Spare:
		return fmt.Errorf("raftmode: index %d outside %d replicas", c.Index, c.N)
	case c.Log == nil:
		return errors.New("raftmode: no log storage")
	case c.Executor == nil:
		return errors.New("raftmode: no executor")
	case c.Rand == nil:
		return errors.New("raftmode: no random source")
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		return fmt.Errorf("raftmode: heartbeat %d ticks not below election timeout %d ticks", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.MaxBatchSize <= 0 {
		c.MaxBatchSize = DefaultMaxBatchSize
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.MaxPendingRequests <= 0 {
		c.MaxPendingRequests = DefaultMaxPendingRequests
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.MaxPendingPerKey <= 0 {
		c.MaxPendingPerKey = DefaultMaxPendingPerKey
	}
	if c.MaxPendingBytesPerKey <= 0 {
		c.MaxPendingBytesPerKey = DefaultMaxPendingBytesPerKey
	}
	if c.MaxInflightMsgs <= 0 {
		c.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.SnapshotCatchUpEntries == 0 {
		c.SnapshotCatchUpEntries = DefaultSnapshotCatchUpEntries
	}
	if c.MaxPendingReads <= 0 {
		c.MaxPendingReads = DefaultMaxPendingReads
	}
	if c.MaxPendingReadBytes <= 0 {
		c.MaxPendingReadBytes = DefaultMaxPendingReadBytes
	}
	if c.ReadTimeoutTicks <= 0 {
		c.ReadTimeoutTicks = c.ElectionTicks
	}
	if c.ReadIndexesInFlight <= 0 {
		c.ReadIndexesInFlight = DefaultReadIndexesInFlight
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// RaftID is the raft ID of replica index.
func RaftID(index uint32) uint64 { return uint64(index) + 1 }

// disabledElectionTicks is the election timeout handed to etcd raft: long
// enough never to fire, because the Core campaigns on its own timer.
const disabledElectionTicks = 1 << 30
