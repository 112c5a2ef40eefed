package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/raftmode"
)

// Replica describes one member of the cluster (config.Replica: the
// configuration file decodes into it).
type Replica = config.Replica

// Config configures a replica of any runtime: what every runtime needs
// (identity, members, addresses, database, client admission, ticks,
// logging) and each core's tuning (PBFT, Raft). A runtime's own options
// (the PBFT runtime's fault-injection filter) are arguments of its Start.
type Config struct {
	ClusterID string
	Index     uint32
	Key       ed25519.PrivateKey
	// Replicas are the members of the cluster file's configuration (the
	// genesis), Replicas[i].Index == i.
	Replicas []Replica
	// Self is this replica's own record: its index, its key's public key
	// and its address (ApplyDefaults fills it from Replicas[Index] for a
	// member). Spare says this replica is not among Replicas: a spare that
	// learns the configuration and joins once an administrator adds it;
	// then Self.Address is required.
	Self  membership.Member
	Spare bool
	// KeyRotated says Key is not the one the cluster file gives this
	// replica (ApplyDefaults sets it; only when the genesis names
	// administrators): the replica was restarted after a key rotation and
	// takes part only once a configuration names it with Key.
	KeyRotated bool
	// Genesis is the configuration of membership epoch 0: the cluster
	// file's replicas and administrators (ApplyDefaults derives one with
	// no administrators from Replicas when it is empty).
	Genesis membership.Config
	// ListenAddr is this replica's libp2p listen multiaddr; "" uses
	// Replicas[Index].Addr.
	ListenAddr string
	// MetricsAddr is host:port for the /metrics HTTP endpoint; "" for none.
	MetricsAddr string
	// DataDir holds the replica's database.
	DataDir string
	// Sync fsyncs the protocol log before sending (the default; turning it
	// off is for benchmarks only and logs a warning).
	Sync bool
	// WALSegmentBytes is the preallocated size of each segment of the
	// protocol log (storage.Options.WALSegmentBytes); 0 is the default.
	WALSegmentBytes int64
	// ClientAllowlist, when not empty, lists the Ed25519 public keys of
	// the only clients that may connect to this replica; other non-member
	// peers are refused by the transport. Empty: any client may connect.
	ClientAllowlist []ed25519.PublicKey
	// ClientRateLimit bounds each client's requests per second at this
	// replica, with bursts of ClientRateBurst (0: max(1, limit)); excess
	// requests are dropped before their signatures are checked. 0: no
	// rate limit (the per-client pending bound still applies).
	ClientRateLimit float64
	ClientRateBurst int

	// PBFT tunes the PBFT core; ID, N and Signer are filled in by the node.
	PBFT protocol.Config
	// Consensus selects the protocol: config.ConsensusPBFT (or "") or
	// config.ConsensusRaft; launch.Start starts the matching runtime.
	Consensus string
	// Raft tunes the Raft mode's core (raftnode.Start only); Index, N, Log,
	// Executor, Rand and Logger are filled in by the node.
	Raft raftmode.Config
	// NoReceipts turns receipts off (PBFT): replicas then sign no receipt
	// statement and replies carry none (replica.Config.Receipts). The
	// default, false, signs once per executed batch.
	NoReceipts bool
	// ReceiptsCachedOnly attaches receipts only to replies from the
	// reply cache (replica.Config.ReceiptsCachedOnly).
	ReceiptsCachedOnly bool
	// CommittedRepliesOnly turns tentative replies off (PBFT;
	// replica.Config.CommittedRepliesOnly).
	CommittedRepliesOnly bool
	// Application opens the replicated application on the replica's
	// database; nil is the built-in key-value store (execution.OpenKV).
	Application execution.Opener

	// TickInterval is the wall-clock length of one protocol tick (10ms).
	TickInterval time.Duration
	// VerifyWorkers sizes signature verification: the verification pool
	// has VerifyWorkers workers (default: GOMAXPROCS) and VerifyLoops
	// receiving goroutines hand it their sets.
	VerifyWorkers int
	// CheckDirectCommits checks the signature of every COMMIT, even one
	// its author's own authenticated session delivered, which by default
	// counts on that session's word (protocol.Frame.Sender). For
	// measuring what the signature checks cost; a faulty replica gains
	// nothing from the default.
	CheckDirectCommits bool
	// InboxSize bounds verified inputs waiting for the event loop (8192).
	InboxSize int

	Logger *slog.Logger

	// clientPeers is ClientAllowlist as libp2p peer IDs, filled in by
	// ApplyDefaults.
	clientPeers []peer.ID
}

// DefaultTickInterval is the wall-clock length of one protocol tick.
const DefaultTickInterval = 10 * time.Millisecond

// VerifyLoops is how many goroutines take frames for verification (each
// hands its sets to the verification pool of VerifyWorkers).
func (c Config) VerifyLoops() int {
	if c.VerifyWorkers <= 0 {
		return 2
	}
	return c.VerifyWorkers
}

// ApplyDefaults checks c and fills in its defaults; every runtime's Start
// calls it. It refuses a configuration no runtime can start with.
func (c *Config) ApplyDefaults() error {
	switch {
	case c.ClusterID == "":
		return errors.New("node: no cluster id")
	case len(c.Key) != ed25519.PrivateKeySize:
		return errors.New("node: no signing key")
	case int(c.Index) >= len(c.Replicas) && !c.Spare:
		return fmt.Errorf("node: index %d outside %d replicas", c.Index, len(c.Replicas))
	case int(c.Index) < len(c.Replicas) && c.Spare:
		return fmt.Errorf("node: a spare's index %d is among the %d replicas", c.Index, len(c.Replicas))
	case c.DataDir == "":
		return errors.New("node: no data directory")
	case c.ClientRateLimit < 0 || c.ClientRateBurst < 0:
		return fmt.Errorf("node: client rate limit %v, burst %d: must not be negative", c.ClientRateLimit, c.ClientRateBurst)
	}
	for i, r := range c.Replicas {
		if r.Index != uint32(i) {
			return fmt.Errorf("node: replica %d listed at position %d", r.Index, i)
		}
		if len(r.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("node: replica %d has no public key", i)
		}
	}
	if err := c.defaultSelf(); err != nil {
		return err
	}
	c.clientPeers = nil
	for i, pub := range c.ClientAllowlist {
		id, err := identity.PeerIDFromPublicKey(pub)
		if err != nil {
			return fmt.Errorf("node: client allowlist entry %d: %w", i, err)
		}
		c.clientPeers = append(c.clientPeers, id)
	}
	if c.ListenAddr == "" {
		c.ListenAddr = c.Self.Address
	}
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.InboxSize <= 0 {
		c.InboxSize = 8192
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// defaultSelf fills Self (a member's from Replicas[Index]) and Genesis
// (from Replicas when empty) and checks that the key is Self's.
func (c *Config) defaultSelf() error {
	pub := c.Key.Public().(ed25519.PublicKey)
	if c.Spare {
		if c.Self.Address == "" {
			return fmt.Errorf("node: spare %d has no address", c.Index)
		}
		c.Self.Index = c.Index
		if c.Self.PublicKey == nil {
			c.Self.PublicKey = pub
		}
	} else {
		r := c.Replicas[c.Index]
		c.Self = membership.Member{Index: r.Index, PublicKey: r.PublicKey, Address: r.Addr}
		if !pub.Equal(c.Self.PublicKey) && len(c.Genesis.Admins) > 0 {
			// A replica restarted after `admin rotate-key`: it starts as
			// a joiner under its new key, and the runtime checks that key
			// against the configuration it learns.
			c.Self.PublicKey, c.KeyRotated = pub, true
		}
	}
	if !pub.Equal(c.Self.PublicKey) {
		return fmt.Errorf("node: key does not match replica %d's public key (and the cluster names no administrators who could have rotated it)", c.Index)
	}
	if len(c.Genesis.Members) == 0 {
		for _, r := range c.Replicas {
			c.Genesis.Members = append(c.Genesis.Members, membership.Member{Index: r.Index, PublicKey: r.PublicKey, Address: r.Addr})
		}
	}
	return nil
}

// PublicKeys returns the replicas' public keys, by index.
func (c Config) PublicKeys() []ed25519.PublicKey {
	pubs := make([]ed25519.PublicKey, len(c.Replicas))
	for i, r := range c.Replicas {
		pubs[i] = r.PublicKey
	}
	return pubs
}
