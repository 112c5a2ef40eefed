package pbft

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/verifypool"
	"github.com/pbftnode/pbftnode/wire"
)

// Node is one running PBFT replica.
type Node struct {
	node.Shell
	cfg      node.Config
	filter   Filter
	log      *slog.Logger
	executor *execution.Executor
	driver   *replica.Driver
	// verifier is the verifier of the epoch in force (swapped by onEpoch;
	// read by the verification goroutines).
	verifier atomic.Pointer[protocol.MessageVerifier]
	window   uint64 // the core's window size, for the verifier's pre-check
	pool     *verifypool.Pool
	// requestCache and maxBatch are what every epoch's verifier shares.
	requestCache *crypto.VerifiedCache
	maxBatch     int
	// epochs says the driver follows configuration epochs; epochMetrics
	// count them; hostEpochs are the epochs of the configurations the
	// transport's member set was last built from; everMember is set once
	// this replica was a member of a configuration in force (event loop).
	epochs       bool
	epochMetrics *epochMetrics
	tentative    *tentativeMetrics
	hostEpochs   []uint64
	// epochNow is the driver's epoch status as of the last switch, for
	// the snapshot server off the event loop.
	epochNow   atomic.Pointer[replica.EpochStatus]
	everMember bool
	metrics    *node.Metrics
	// readOnly counts read-only requests handed to the driver.
	readOnly prometheus.Counter
	// readReplies holds the read-only replies of one event-loop step, sent
	// a client's together at its end (flushReadReplies); readSender packs
	// them. Both owned by the event loop.
	readReplies []*wire.Reply
	readSender  node.ReadReplies

	inbox  chan input
	status atomic.Pointer[node.Status]
	// watermarks are what the verifier's admission pre-check needs of the
	// core's state, published with status.
	watermarks atomic.Pointer[protocol.Watermarks]
	signer     *crypto.Signer

	// State transfer: snapshots are served off the loop goroutine.
	snapshotEvents chan snapshotEvent
	stateRequests  chan node.StateRequest

	// phases times each sequence's phases; owned by the event loop.
	phases *phaseClock

	// View-change accounting, owned by the event loop: the last status of
	// the core in force (statusCore), and what the cores of earlier
	// configuration epochs counted (each epoch's core counts from 0).
	lastCore          protocol.Status
	statusCore        *protocol.Replica
	earlierCores      coreCounters
	viewChangeStarted time.Time
	// digestAt caches the state digest publishStatus last computed and
	// the sequence it was computed at (event loop).
	digestAt struct {
		seq    uint64
		digest [32]byte
		valid  bool
	}
}

// Start opens the replica's database, starts its transport, verification
// workers, snapshot server and event loop, and returns once it is
// listening. filter, when not nil, sees everything the replica sends: it
// is how fault injection (byzantine/) makes a replica misbehave; nil for
// a correct replica.
func Start(cfg node.Config, filter Filter) (*Node, error) {
	if err := cfg.ApplyDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, filter: filter, log: cfg.Logger.With("replica", cfg.Index), metrics: node.NewMetrics(), phases: newPhaseClock()}
	n.epochMetrics = newEpochMetrics(n.metrics)
	n.tentative = newTentativeMetrics(n.metrics)
	n.WatchDatabaseSize(n.metrics)
	n.readOnly = newReadOnlyCounter(n.metrics)
	if cf, ok := filter.(CountingFilter); ok {
		n.metrics.WatchFaultInjections(func() float64 { return float64(cf.Actions()) })
	}
	if err := n.open(); err != nil {
		_ = n.CloseResources(n.closePool)
		return nil, err
	}
	var loops []func(ctx context.Context)
	for range cfg.VerifyLoops() {
		loops = append(loops, n.verifyLoop)
	}
	n.Run(append(loops, n.serveSnapshots, n.eventLoop, n.learnHistory)...)
	return n, nil
}

func (n *Node) open() error {
	cfg := n.cfg
	if err := n.OpenDB(cfg, n.log, "protocol state"); err != nil {
		return err
	}
	app, err := n.OpenApplication(cfg, n.log)
	if err != nil {
		return err
	}
	n.metrics.WatchApplication(app)
	pcfg := cfg.PBFT
	pcfg.ID, pcfg.N, pcfg.Logger = cfg.Index, len(cfg.Replicas), n.log
	if cfg.Spare {
		pcfg.ID = 0 // a placeholder: with epochs the core runs at this replica's position once it is a member
	}
	rules, withEpochs := pbftMembershipRules(cfg, pcfg.CheckpointInterval)
	var opts []execution.ExecutorOption
	if withEpochs {
		opts = append(opts, execution.WithMembership(rules))
	} else if cfg.Spare || cfg.KeyRotated {
		return fmt.Errorf("node: replica %d is a spare or has a rotated key, but the cluster file's configuration is incomplete (%w)", cfg.Index, cfg.Genesis.Check())
	} else {
		n.log.Info("the cluster file's configuration is incomplete (no addresses); configuration changes are refused")
	}
	if n.executor, err = execution.NewExecutor(n.DB, app, n.log, opts...); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.signer = crypto.NewSigner(cfg.Key, cfg.ClusterID)
	pcfg.Signer = n.signer
	var verifier *protocol.MessageVerifier
	verifier, n.pool = node.NewVerifier(cfg, pcfg.MaxBatchSize)
	n.verifier.Store(verifier)
	n.requestCache, n.maxBatch = crypto.NewVerifiedCache(1<<16), pcfg.MaxBatchSize
	var epochs *replica.Epochs
	if withEpochs {
		n.epochs, epochs = true, n.epochsConfig(rules)
	}
	// The snapshot server's channel exists before the driver can hand it
	// a snapshot.
	n.snapshotEvents = make(chan snapshotEvent, 16)
	if n.driver, err = replica.New(replica.Config{
		Core:      pcfg,
		Storage:   driverStorage{DB: n.DB, m: n.metrics},
		Network:   driverNetwork{n: n},
		Executor:  n.executor,
		Snapshots: driverSnapshots{n: n},
		Verifier:  verifier,
		Epochs:    epochs,
		Receipts:  receiptMode(cfg),
		// Tentative replies (replica's tentative execution).
		CommittedRepliesOnly: cfg.CommittedRepliesOnly,
		Filter:               n.filter,
		// The snapshot server answers whole windows (answerWindow).
		TransferWindow: statetransfer.DefaultWindow,
		Observer:       &driverObserver{n: n},
		Logger:         n.log,
	}); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.window = n.driver.Core().Config().WindowSize
	verifier.SetWindowSize(n.window)
	// The transport starts before Recover: with epochs, Recover's OnEpoch
	// sets its members to the configurations of the epoch in force.
	hostCfg := cfg
	hostCfg.Replicas = hostReplicas(cfg)
	if err := n.StartHost(hostCfg, "", n.log); err != nil {
		return err
	}
	if err := n.driver.Recover(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.metrics.WatchTransport(n.Host.Stats)
	n.inbox = make(chan input, cfg.InboxSize)
	n.stateRequests = make(chan node.StateRequest, 64)
	n.publishStatus()
	return n.ServeOps(cfg.MetricsAddr, n.metrics, node.PBFTReadiness(len(cfg.Replicas)), n.Status, n.log)
}

// StoredLogEntries counts the protocol log entries in the database (they
// are deleted at each stable checkpoint, so this stays bounded).
func (n *Node) StoredLogEntries() (int, error) {
	entries, err := n.DB.LoadLog(0)
	return len(entries), err
}

// Status returns the replica's latest published status.
func (n *Node) Status() node.Status { return *n.status.Load() }

// MetricValue returns the value of an unlabelled counter or gauge of this
// replica, or the sum over all its label values (0 if absent). For tests
// and status tools.
func (n *Node) MetricValue(name string) float64 { return n.metrics.Value(name) }

// MetricValueWith is MetricValue over the series whose label is value.
func (n *Node) MetricValueWith(name, label, value string) float64 {
	return n.metrics.ValueWith(name, label, value)
}

// Close stops the replica and releases its resources. Idempotent.
func (n *Node) Close() error { return n.Shutdown(n.closePool) }

func (n *Node) closePool() {
	if n.pool != nil {
		n.pool.Close()
	}
}

// receiptMode is the driver's receipt mode for cfg (node.Config.NoReceipts,
// ReceiptsCachedOnly).
func receiptMode(cfg node.Config) replica.ReceiptMode {
	switch {
	case cfg.NoReceipts:
		return replica.ReceiptsOff
	case cfg.ReceiptsCachedOnly:
		return replica.ReceiptsCachedOnly
	}
	return replica.ReceiptsInReplies
}
