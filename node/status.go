package node

import "github.com/multiformats/go-multiaddr"

// Status is a snapshot of a running replica, safe to read from any
// goroutine.
type Status struct {
	Index            uint32
	View             uint64
	ExecutedSequence uint64
	StableCheckpoint uint64
	StateDigest      [32]byte
	// Bounded-memory evidence: slots of the protocol log held in memory,
	// messages buffered above the window, requests tracked.
	RetainedSlots   int
	BufferedAhead   int
	PendingRequests int
	Transferring    bool
	// ViewActive is false while changing views; ViewChanges counts the
	// views entered through a NEW-VIEW since start.
	ViewActive  bool
	ViewChanges uint64
	// Leader is the index of the replica this one believes orders
	// requests: the primary of View (PBFT) or the Raft leader; -1 when
	// unknown.
	Leader int
	// Epoch is the membership epoch the replica is in (0: the cluster
	// file's configuration) and Members the indices of that epoch's
	// members, ascending (package membership). A runtime that does not
	// change its membership reports its genesis.
	Epoch   uint64
	Members []uint32
}

// Runner is a running replica of any runtime: *pbft.Node, *raftnode.Node
// or *floor.Node.
type Runner interface {
	Status() Status
	Addrs() []multiaddr.Multiaddr
	MetricsAddr() string
	DatabaseSize() (int64, error)
	Close() error
}
