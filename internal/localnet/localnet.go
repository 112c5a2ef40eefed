package localnet

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/floor"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/node/raftnode"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/raftmode"
)

// Options configures a local cluster.
type Options struct {
	// Replicas is n (default 4).
	Replicas int
	// Dir holds the replicas' data directories; "" makes a temporary one
	// that Close removes.
	Dir string
	// NoSync turns fsync off (faster; for benchmarks and tests).
	NoSync bool
	// WALSegmentBytes sets node.Config.WALSegmentBytes on every replica.
	WALSegmentBytes int64
	// Protocol tunes every replica's core.
	Protocol protocol.Config
	// Consensus is config.ConsensusPBFT (the default) or config.ConsensusRaft;
	// Raft tunes the Raft mode's cores.
	Consensus string
	Raft      raftmode.Config
	// Floor runs floor.Node benchmark instruments on a PBFT
	// configuration instead of PBFT replicas (Consensus must be PBFT).
	Floor bool
	// Metrics serves each replica's operations endpoints (/metrics,
	// /status) on a free loopback port: Replica(i).MetricsAddr().
	Metrics bool
	// Filters makes replica i misbehave (fault injection).
	Filters map[int]pbft.Filter
	// FilterFactory, when set, builds replica i's filter from its key (a
	// Byzantine replica signs what it forges); nil results are ignored.
	FilterFactory func(i int, key ed25519.PrivateKey, clusterID string) pbft.Filter
	// Protocol tuning below applies to every replica.
	TickInterval time.Duration
	// Application, when set, gives replica i's application opener
	// (node.Config.Application); nil: the built-in key-value store.
	Application func(i int) execution.Opener
	// ReceiptsCachedOnly sets node.Config.ReceiptsCachedOnly on every
	// replica.
	ReceiptsCachedOnly bool
	// CheckDirectCommits sets node.Config.CheckDirectCommits on every
	// replica.
	CheckDirectCommits bool
	// Rand supplies the keys; nil uses crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
}

// Net is a running local cluster.
type Net struct {
	ClusterID string
	Replicas  []node.Replica
	Nodes     []*pbft.Node // PBFT replicas, nil for a stopped replica
	// RaftNodes are the Raft-mode replicas, nil for a stopped replica.
	RaftNodes []*raftnode.Node
	// Floors are the floor Nodes of an Options.Floor cluster, nil for a
	// stopped one.
	Floors  []*floor.Node
	floor   bool
	configs []node.Config
	// filters are the PBFT replicas' fault injections (nil: correct).
	filters []pbft.Filter
	dir     string
	ownDir  bool
	rand    io.Reader
	logger  *slog.Logger

	mu      sync.Mutex
	clients []*client.Client
}

// Start starts a cluster and returns once every replica listens.
func Start(opts Options) (*Net, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Floor && opts.Consensus != "" && opts.Consensus != config.ConsensusPBFT {
		return nil, fmt.Errorf("localnet: a floor cluster runs on a PBFT configuration, not %q", opts.Consensus)
	}
	net := &Net{ClusterID: fmt.Sprintf("localnet-%d", time.Now().UnixNano()), dir: opts.Dir, rand: opts.Rand, logger: opts.Logger, floor: opts.Floor}
	if net.dir == "" {
		d, err := os.MkdirTemp("", "pbftnode-localnet-")
		if err != nil {
			return nil, fmt.Errorf("localnet: %w", err)
		}
		net.dir, net.ownDir = d, true
	}
	keys := make([]ed25519.PrivateKey, opts.Replicas)
	for i := range keys {
		key, err := crypto.GenerateKey(opts.Rand)
		if err != nil {
			return nil, fmt.Errorf("localnet: %w", err)
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		keys[i] = key
		net.Replicas = append(net.Replicas, node.Replica{
			Index: uint32(i), PublicKey: key.Public().(ed25519.PublicKey),
			Addr: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port),
		})
	}
	for i, key := range keys {
		filter := opts.Filters[i]
		if opts.FilterFactory != nil {
			if f := opts.FilterFactory(i, key, net.ClusterID); f != nil {
				filter = f
			}
		}
		net.configs = append(net.configs, node.Config{
			ClusterID: net.ClusterID, Index: uint32(i), Key: key, Replicas: net.Replicas,
			DataDir: filepath.Join(net.dir, fmt.Sprintf("node%d", i)), Sync: !opts.NoSync,
			PBFT: opts.Protocol, Logger: opts.Logger, TickInterval: opts.TickInterval,
			Consensus: opts.Consensus, Raft: opts.Raft, WALSegmentBytes: opts.WALSegmentBytes,
		})
		if opts.Application != nil {
			net.configs[i].Application = opts.Application(i)
		}
		net.configs[i].ReceiptsCachedOnly = opts.ReceiptsCachedOnly
		net.configs[i].CheckDirectCommits = opts.CheckDirectCommits
		net.filters = append(net.filters, filter)
		if opts.Metrics {
			net.configs[i].MetricsAddr = "127.0.0.1:0"
		}
	}
	net.Nodes = make([]*pbft.Node, opts.Replicas)
	net.RaftNodes = make([]*raftnode.Node, opts.Replicas)
	net.Floors = make([]*floor.Node, opts.Replicas)
	for i := range keys {
		if err := net.StartReplica(i); err != nil {
			net.Close()
			return nil, err
		}
	}
	return net, nil
}

// IsRaft reports whether the cluster runs the Raft mode.
func (n *Net) IsRaft() bool { return n.configs[0].Consensus == config.ConsensusRaft }

// StartReplica starts replica i (again).
func (n *Net) StartReplica(i int) error {
	if n.floor {
		nd, err := floor.Start(n.configs[i])
		if err != nil {
			return fmt.Errorf("localnet: floor node %d: %w", i, err)
		}
		n.Floors[i] = nd
		return nil
	}
	if n.IsRaft() {
		nd, err := raftnode.Start(n.configs[i])
		if err != nil {
			return fmt.Errorf("localnet: replica %d: %w", i, err)
		}
		n.RaftNodes[i] = nd
		return nil
	}
	nd, err := pbft.Start(n.configs[i], n.filters[i])
	if err != nil {
		return fmt.Errorf("localnet: replica %d: %w", i, err)
	}
	n.Nodes[i] = nd
	return nil
}

// Replica returns running replica i of either protocol, or nil.
func (n *Net) Replica(i int) node.Runner {
	if n.RaftNodes[i] != nil {
		return n.RaftNodes[i]
	}
	if n.Nodes[i] != nil {
		return n.Nodes[i]
	}
	if n.Floors[i] != nil {
		return n.Floors[i]
	}
	return nil
}

// StopReplica stops replica i, as if its process ended.
func (n *Net) StopReplica(i int) error {
	r := n.Replica(i)
	if r == nil {
		return nil
	}
	err := r.Close()
	n.Nodes[i], n.RaftNodes[i], n.Floors[i] = nil, nil, nil
	return err
}

// WipeReplica deletes stopped replica i's data directory, as if its disk
// were replaced.
func (n *Net) WipeReplica(i int) error {
	if n.Replica(i) != nil {
		return fmt.Errorf("localnet: replica %d is running", i)
	}
	return os.RemoveAll(n.configs[i].DataDir)
}

// Members returns the cluster as transport members.
func (n *Net) Members() ([]p2p.Member, error) {
	members := make([]p2p.Member, len(n.Replicas))
	for i, r := range n.Replicas {
		m, err := node.Member(r)
		if err != nil {
			return nil, err
		}
		members[i] = m
	}
	return members, nil
}

// NewClient returns a client of the cluster with a fresh key. Close
// closes it.
func (n *Net) NewClient(retransmit time.Duration) (*client.Client, error) {
	return n.NewClientWithConfig(client.Config{RetransmitTimeout: retransmit})
}

// NewClientWithConfig returns a client; cfg's cluster and replicas are
// filled in, and its key with a fresh one when cfg has none. Close closes
// it.
func (n *Net) NewClientWithConfig(cfg client.Config) (*client.Client, error) {
	key := cfg.Key
	if key == nil {
		var err error
		if key, err = crypto.GenerateKey(n.rand); err != nil {
			return nil, fmt.Errorf("localnet: %w", err)
		}
	}
	members, err := n.Members()
	if err != nil {
		return nil, err
	}
	cfg.ClusterID, cfg.Key, cfg.Replicas = n.ClusterID, key, members
	if n.IsRaft() && cfg.ReplyQuorum == 0 {
		cfg.ReplyQuorum = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = n.logger
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.clients = append(n.clients, c)
	n.mu.Unlock()
	return c, nil
}

// Close stops every client and replica and removes a temporary directory.
func (n *Net) Close() error {
	var errs []error
	n.mu.Lock()
	for _, c := range n.clients {
		errs = append(errs, c.Close())
	}
	n.clients = nil
	n.mu.Unlock()
	for i := range n.Nodes {
		errs = append(errs, n.StopReplica(i))
	}
	if n.ownDir {
		errs = append(errs, os.RemoveAll(n.dir))
	}
	return errors.Join(errs...)
}

// freePort asks the kernel for a free TCP port on loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localnet: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
