package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/verifypool"
)

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
}

// Node is one running PBFT replica.
type Node struct {
	shell
	cfg      Config
	log      *slog.Logger
	kv       *execution.KV
	executor *execution.Executor
	driver   *replica.Driver
	verifier *protocol.MessageVerifier
	window   uint64 // the core's window size, for the verifier's pre-check
	pool     *verifypool.Pool
	metrics  *metrics

	inbox  chan input
	status atomic.Pointer[Status]
	signer *crypto.Signer

	// State transfer: snapshots are served off the loop goroutine.
	snapshotEvents chan snapshotEvent
	stateRequests  chan stateRequest

	// phases times each sequence's phases; owned by the event loop.
	phases *phaseClock

	// View-change accounting, owned by the event loop.
	lastCore          protocol.Status
	viewChangeStarted time.Time
}

// Start opens the replica's database, starts its transport, verification
// workers and event loop, and returns once it is listening.
func Start(cfg Config) (*Node, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("replica", cfg.Index), metrics: newMetrics(), phases: newPhaseClock()}
	n.metrics.watchDatabaseSize(n.dbSize)
	if cf, ok := cfg.Filter.(CountingFilter); ok {
		n.metrics.watchFaultInjections(func() float64 { return float64(cf.Actions()) })
	}
	if err := n.open(); err != nil {
		n.closeResources()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for range cfg.verifyLoops() {
		n.wg.Add(1)
		go n.verifyLoop(ctx)
	}
	n.wg.Add(2)
	go n.serveSnapshots(ctx)
	go n.eventLoop(ctx)
	return n, nil
}

func (n *Node) open() error {
	cfg := n.cfg
	if !cfg.Sync {
		n.log.Warn("fsync is off: a machine crash can lose protocol state; use only for benchmarks")
	}
	db, err := storage.Open(cfg.DataDir, storage.Options{Sync: cfg.Sync, Logger: n.log})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.db = db
	if n.kv, err = execution.NewKV(db.LevelDB()); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if n.executor, err = execution.NewExecutor(db, n.kv, n.log); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	pubs := make([]ed25519.PublicKey, len(cfg.Replicas))
	for i, r := range cfg.Replicas {
		pubs[i] = r.PublicKey
	}
	n.pool = verifypool.New(cfg.ClusterID, cfg.VerifyWorkers)
	pcfg := cfg.PBFT
	pcfg.ID, pcfg.N, pcfg.Logger = cfg.Index, len(cfg.Replicas), n.log
	n.signer = crypto.NewSigner(cfg.Key, cfg.ClusterID)
	pcfg.Signer = n.signer
	n.verifier = protocol.NewMessageVerifier(cfg.ClusterID, pubs, crypto.NewVerifiedCache(1<<16), n.pool, pcfg.MaxBatchSize)
	// The snapshot server's channel exists before the driver can hand it
	// a snapshot.
	n.snapshotEvents = make(chan snapshotEvent, 16)
	if n.driver, err = replica.New(replica.Config{
		Core:      pcfg,
		Storage:   driverStorage{DB: db, m: n.metrics},
		Network:   driverNetwork{n: n},
		Executor:  n.executor,
		Snapshots: driverSnapshots{n: n},
		Verifier:  n.verifier,
		Filter:    cfg.Filter,
		Observer:  &driverObserver{n: n},
		Logger:    n.log,
	}); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.window = n.driver.Core().Config().WindowSize
	n.verifier.SetWindowSize(n.window)
	if err := n.driver.Recover(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := n.startHost(cfg, "", n.log); err != nil {
		return err
	}
	n.metrics.watchTransport(n.host.Stats)
	n.inbox = make(chan input, cfg.InboxSize)
	n.stateRequests = make(chan stateRequest, 64)
	n.publishStatus()
	return n.serveMetrics(cfg.MetricsAddr, n.metrics, n.opsState(), n.log)
}

// Member converts a replica's configuration to a transport member.
func Member(r Replica) (p2p.Member, error) {
	id, err := identity.PeerIDFromPublicKey(r.PublicKey)
	if err != nil {
		return p2p.Member{}, fmt.Errorf("node: replica %d: %w", r.Index, err)
	}
	m := p2p.Member{Index: r.Index, ID: id}
	if r.Addr != "" {
		if m.Addr, err = multiaddr.NewMultiaddr(r.Addr); err != nil {
			return p2p.Member{}, fmt.Errorf("node: replica %d address %q: %w", r.Index, r.Addr, err)
		}
	}
	return m, nil
}

func (n *Node) dbSize() float64 {
	if n.db == nil {
		return 0
	}
	size, err := n.db.SizeBytes()
	if err != nil {
		return 0
	}
	return float64(size)
}

// StoredLogEntries counts the protocol log entries in the database (they
// are deleted at each stable checkpoint, so this stays bounded).
func (n *Node) StoredLogEntries() (int, error) {
	entries, err := n.db.LoadLog(0)
	return len(entries), err
}

// Status returns the replica's latest published status.
func (n *Node) Status() Status { return *n.status.Load() }

// Close stops the replica and releases its resources. Idempotent.
func (n *Node) Close() error { return n.shutdown(n.closePool) }

func (n *Node) closeResources() error { return n.shell.closeResources(n.closePool) }

func (n *Node) closePool() {
	if n.pool != nil {
		n.pool.Close()
	}
}
