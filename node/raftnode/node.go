package raftnode

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/raftreplica"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// Node is one running replica of the crash-fault Raft mode. It shares
// everything with the PBFT runtime (pbft.Node) but the protocol, through
// the shell (node.Shell) and the shared helpers of package node: the libp2p transport (on
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
type Node struct {
	node.Shell
	cfg      node.Config
	log      *slog.Logger
	executor *execution.Executor
	core     *raftmode.Core
	metrics  *node.Metrics

	inbox     chan raftInput
	stateReqs chan node.StateRequest
	snapshots chan *execution.StateSnapshot
	status    atomic.Pointer[node.Status]

	// Owned by the event loop.
	driver      *raftreplica.Driver
	ports       *raftPorts
	lastLeader  int
	leaderTerms uint64
	// hostEpoch is the configuration epoch the transport's member set
	// follows; joinPending: a spare admitted the members of a learned
	// configuration and waits to apply one; removedLogged: the removal
	// was logged (members.go).
	hostEpoch     uint64
	joinPending   bool
	removedLogged bool
	// hostJoint: the transport's member set includes the members removed
	// by a joint configuration's change (transportReplicas); configJoint
	// is pbftnode_raft_config_joint.
	hostJoint   bool
	configJoint prometheus.Gauge
	// mustLearn: a spare not in its applied configuration, which
	// learnMembership runs for (set before the goroutines start).
	mustLearn bool
	// applied is the applied configuration, published for watchRemoval;
	// learnedRetired a configuration learned from the members that
	// removed this replica (removal.go).
	applied        atomic.Pointer[membership.Config]
	learnedRetired *membership.Config
}

// raftInput is one input for the Raft event loop.
type raftInput struct {
	from  uint32
	msg   *raftpb.Message
	chunk *wire.StateChunk
	req   *wire.Request
	// reads are the read-only requests of one ReadBatch frame.
	reads  []*wire.Request
	client peer.ID
	// joined is a configuration naming this spare, learned from the
	// members (learnMembership); retired one that removed this replica
	// (watchRemoval).
	joined  *membership.Config
	retired *membership.Config
}

// Start opens the replica's database, starts its transport, receiver,
// snapshot server and event loop, and returns once it is listening.
func Start(cfg node.Config) (*Node, error) {
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("replica", cfg.Index, "protocol", "raft"), metrics: node.NewMetrics(), lastLeader: -1}
	n.WatchDatabaseSize(n.metrics)
	if err := n.open(); err != nil {
		_ = n.CloseResources(nil)
		return nil, err
	}
	n.Run(n.receiveFrames, n.serveSnapshots, n.eventLoop, n.learnMembership, n.watchRemoval)
	return n, nil
}

func (n *Node) open() error {
	cfg := n.cfg
	if err := n.OpenDB(cfg, n.log, "acknowledged writes"); err != nil {
		return err
	}
	db := n.DB
	app, err := n.OpenApplication(cfg, n.log)
	if err != nil {
		return err
	}
	n.metrics.WatchApplication(app)
	var opts []execution.ExecutorOption
	if rules, ok := membershipRules(cfg); ok {
		opts = append(opts, execution.WithMembership(rules))
	} else {
		n.log.Info("the cluster file's configuration is incomplete (no addresses); configuration changes are refused")
	}
	if n.executor, err = execution.NewExecutor(db, app, n.log, opts...); err != nil {
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
	rc.Index, rc.N, rc.Executor, rc.Logger = cfg.Index, len(cfg.Replicas), n.executor, n.log
	rc.Log = timedLog{LogStorage: raftLog, seconds: n.metrics.PersistSeconds}
	rc.Spare = cfg.Spare
	rc.Rand = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	if n.core, err = raftmode.New(rc); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	// The transport admits the applied configuration's members (see
	// hostReplicas), which may differ from the cluster file's.
	hostCfg := cfg
	outgoing := n.core.OutgoingMembers()
	hostCfg.Replicas = n.transportReplicas(n.core.Membership(), outgoing)
	n.hostEpoch, n.hostJoint = n.core.Epoch(), len(outgoing) > 0
	n.configJoint = newJointGauge(n.metrics.Registry)
	n.mustLearn = cfg.Spare && n.core.Membership().Position(cfg.Index) < 0
	if err := n.StartHost(hostCfg, p2p.RaftProtocol, n.log); err != nil {
		return err
	}
	n.metrics.WatchTransport(n.Host.Stats)
	n.inbox = make(chan raftInput, cfg.InboxSize)
	n.stateReqs = make(chan node.StateRequest, 64)
	n.snapshots = make(chan *execution.StateSnapshot, 4)
	n.ports = &raftPorts{n: n}
	n.driver = raftreplica.New(raftreplica.Config{
		Self: cfg.Index, N: len(cfg.Replicas), Core: n.core, App: n.executor,
		Network: n.ports, Snapshots: n.ports, Observer: n.ports,
		TransferObserver: &transferMetrics{m: n.metrics}, Logger: n.log,
	})
	n.publishStatus()
	return n.ServeOps(cfg.MetricsAddr, n.metrics, node.RaftReadiness(len(cfg.Replicas)), n.Status, n.log)
}

// Status returns the replica's latest published status.
func (n *Node) Status() node.Status { return *n.status.Load() }

// Close stops the replica and releases its resources. Idempotent.
func (n *Node) Close() error { return n.Shutdown(nil) }

// clientPeer returns the libp2p peer of a client id (the peer of its
// Ed25519 key; the rest of the id is the client's session).
func clientPeer(clientID []byte) (peer.ID, bool) {
	id, err := identity.ClientPeerID(clientID)
	return id, err == nil
}
