package node

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/raftreplica"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// RaftNode is one running replica of the crash-fault Raft mode. It shares
// everything with Node but the protocol: the libp2p transport (on
// p2p.RaftProtocol), the goleveldb database (the raft log under its own
// prefix), the executor and key-value application, the client protocol,
// the metric names and the HTTP endpoints. A raftmode.Core, driven by a
// raftreplica.Driver, replaces the PBFT core: the runtime adds the
// goroutines, the sockets, the ticker, the metrics and the snapshot server.
//
// Trust model: crash faults only. Replicas trust each other (the
// transport admits only cluster members); a client is authenticated by the
// Noise session of its stream, so its request signatures are not checked,
// which is part of what the Byzantine mode costs over this one.
type RaftNode struct {
	shell
	cfg      Config
	log      *slog.Logger
	executor *execution.Executor
	core     *raftmode.Core
	metrics  *metrics

	inbox     chan raftInput
	stateReqs chan stateRequest
	snapshots chan *execution.StateSnapshot
	status    atomic.Pointer[Status]

	// Owned by the event loop.
	driver      *raftreplica.Driver
	ports       *raftPorts
	lastLeader  int
	leaderTerms uint64
}

// raftInput is one input for the Raft event loop.
type raftInput struct {
	from   uint32
	msg    *raftpb.Message
	chunk  *wire.StateChunk
	req    *wire.Request
	client peer.ID
}

// StartRaft opens the replica's database, starts its transport and event
// loop, and returns once it is listening.
func StartRaft(cfg Config) (*RaftNode, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	n := &RaftNode{cfg: cfg, log: cfg.Logger.With("replica", cfg.Index, "protocol", "raft"), metrics: newMetrics(), lastLeader: -1}
	n.metrics.watchDatabaseSize(func() float64 {
		if n.db == nil {
			return 0
		}
		size, _ := n.db.SizeBytes()
		return float64(size)
	})
	if err := n.open(); err != nil {
		n.closeResources()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(3)
	go n.receiveFrames(ctx)
	go n.serveRaftSnapshots(ctx)
	go n.eventLoop(ctx)
	return n, nil
}

func (n *RaftNode) open() error {
	cfg := n.cfg
	if !cfg.Sync {
		n.log.Warn("fsync is off: a machine crash can lose acknowledged writes; use only for benchmarks")
	}
	db, err := storage.Open(cfg.DataDir, storage.Options{Sync: cfg.Sync, Logger: n.log})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.db = db
	kv, err := execution.NewKV(db.LevelDB())
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if n.executor, err = execution.NewExecutor(db, kv, n.log); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	raftLog, err := raftlog.Open(db)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	var seed [16]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return fmt.Errorf("node: seed: %w", err)
	}
	rc := cfg.Raft
	rc.Index, rc.N, rc.Log, rc.Executor, rc.Logger = cfg.Index, len(cfg.Replicas), raftLog, n.executor, n.log
	rc.Rand = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	if n.core, err = raftmode.New(rc); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := n.startHost(cfg, p2p.RaftProtocol, n.log); err != nil {
		return err
	}
	n.metrics.watchTransport(n.host.Stats)
	n.inbox = make(chan raftInput, cfg.InboxSize)
	n.stateReqs = make(chan stateRequest, 64)
	n.snapshots = make(chan *execution.StateSnapshot, 4)
	n.ports = &raftPorts{n: n}
	n.driver = raftreplica.New(raftreplica.Config{
		Self: cfg.Index, N: len(cfg.Replicas), Core: n.core, App: n.executor,
		Network: n.ports, Snapshots: n.ports, Observer: n.ports,
		TransferObserver: &transferMetrics{m: n.metrics}, Logger: n.log,
	})
	n.publishStatus()
	return n.serveMetrics(cfg.MetricsAddr, n.metrics, n.opsState(), n.log)
}

// Status returns the replica's latest published status.
func (n *RaftNode) Status() Status { return *n.status.Load() }

func (n *RaftNode) opsState() opsState {
	return n.shell.opsState(len(n.cfg.Replicas), (len(n.cfg.Replicas)-1)/2, n.Status)
}

// Close stops the replica and releases its resources. Idempotent.
func (n *RaftNode) Close() error { return n.shutdown(nil) }

func (n *RaftNode) closeResources() error { return n.shell.closeResources(nil) }

// clientPeer returns the libp2p peer of a client id (the peer of its
// Ed25519 key; the rest of the id is the client's session).
func clientPeer(clientID []byte) (peer.ID, bool) {
	id, err := identity.ClientPeerID(clientID)
	return id, err == nil
}
