package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/storage"
)

// Shell is what every runtime (pbft.Node, raftnode.Node, floor.Node) owns
// beside its protocol: the transport, the database, the operations HTTP
// server, and the goroutines' lifetime. A runtime embeds it, so its
// methods (Addrs, MetricsAddr, DatabaseSize) are the runtime's own.
//
// Contract: a runtime calls OpenDB, OpenApplication and StartHost (and
// ServeOps) while it
// starts, then Run once to start its goroutines; Shutdown stops them and
// releases everything, once. A runtime whose start fails calls
// CloseResources instead.
type Shell struct {
	// Host is the transport, set by StartHost.
	Host *p2p.Host
	// DB is the replica's database, set by OpenDB.
	DB *storage.DB
	// App is the replicated application, set by OpenApplication.
	App execution.Application

	http     *http.Server
	metricsL net.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Addrs returns the transport's listen addresses.
func (s *Shell) Addrs() []multiaddr.Multiaddr { return s.Host.Addrs() }

// MetricsAddr returns the metrics listener's address, or "".
func (s *Shell) MetricsAddr() string {
	if s.metricsL == nil {
		return ""
	}
	return s.metricsL.Addr().String()
}

// DatabaseSize returns the size of the replica's database files.
func (s *Shell) DatabaseSize() (int64, error) { return s.DB.SizeBytes() }

// OpenDB opens the replica's database in cfg.DataDir, fsyncing per
// cfg.Sync. With fsync off it warns that a machine crash can lose
// unsynced (what the runtime stands to lose; "": no warning).
func (s *Shell) OpenDB(cfg Config, log *slog.Logger, unsynced string) error {
	if !cfg.Sync && unsynced != "" {
		log.Warn("fsync is off: a machine crash can lose " + unsynced + "; use only for benchmarks")
	}
	db, err := storage.Open(cfg.DataDir, storage.Options{Sync: cfg.Sync, Logger: log, WALSegmentBytes: cfg.WALSegmentBytes})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	s.DB = db
	return nil
}

// OpenApplication opens the replicated application on the database
// (OpenDB first): cfg.Application, or the built-in key-value store when
// that is nil. Shutdown and CloseResources close it if it is an
// io.Closer.
func (s *Shell) OpenApplication(cfg Config, log *slog.Logger) (execution.Application, error) {
	open := cfg.Application
	if open == nil {
		open = execution.OpenKV
	}
	app, err := open(s.DB, log)
	if err != nil {
		return nil, fmt.Errorf("node: open application: %w", err)
	}
	s.App = app
	return app, nil
}

// closeApp closes the application if it is an io.Closer: an application
// in another process stops waiting for it, so the event loop, which may be
// blocked executing on it, returns.
func (s *Shell) closeApp() error {
	if c, ok := s.App.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// WatchDatabaseSize exports the size of the database files as
// pbftnode_database_size_bytes (0 before OpenDB or when it cannot be
// read).
func (s *Shell) WatchDatabaseSize(m *Metrics) {
	m.WatchDatabaseSize(func() float64 {
		if s.DB == nil {
			return 0
		}
		size, err := s.DB.SizeBytes()
		if err != nil {
			return 0
		}
		return float64(size)
	})
}

// Run starts each loop on a goroutine of its own, with a context that
// Shutdown cancels (Shutdown then waits for them). Call it once, after
// the runtime has started everything the loops use.
func (s *Shell) Run(loops ...func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, loop := range loops {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			loop(ctx)
		}()
	}
}

// Shutdown stops the replica once: it cancels the goroutines, closes the
// host (which ends its inbound channels' producers; the goroutines stop on
// their context), waits for them, then releases the resources, calling
// release (nil: nothing) before the database closes. Later calls return
// nil.
func (s *Shell) Shutdown(release func()) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	err := errors.Join(s.closeApp(), s.Host.Close())
	s.wg.Wait()
	return errors.Join(err, s.CloseResources(release))
}

// CloseResources releases what a (possibly half-started) replica holds,
// calling release (nil: nothing) before the database closes.
func (s *Shell) CloseResources(release func()) error {
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Close())
	}
	if s.Host != nil && !s.closed.Load() {
		errs = append(errs, s.Host.Close())
	}
	if release != nil {
		release()
	}
	errs = append(errs, s.closeApp())
	if s.DB != nil {
		errs = append(errs, s.DB.Close())
	}
	return errors.Join(errs...)
}

// StartHost starts the replica's transport: its libp2p identity from
// cfg.Key, the members from cfg.Replicas, clients admitted per cfg's
// allowlist and rate limit, and replicaProtocol between replicas (""
// for PBFT's). cfg must have passed ApplyDefaults.
func (s *Shell) StartHost(cfg Config, replicaProtocol protocol.ID, log *slog.Logger) error {
	members := make([]p2p.Member, len(cfg.Replicas))
	for i, r := range cfg.Replicas {
		m, err := Member(r)
		if err != nil {
			return err
		}
		members[i] = m
	}
	key, err := identity.LibP2PPrivateKey(cfg.Key)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	s.Host, err = p2p.New(p2p.Config{
		PrivateKey:      key,
		ListenAddr:      cfg.ListenAddr,
		Self:            int(cfg.Index),
		Members:         members,
		ClientsAllowed:  true,
		ClientAllowlist: cfg.clientPeers,
		ClientRateLimit: cfg.ClientRateLimit,
		ClientRateBurst: cfg.ClientRateBurst,
		ReplicaProtocol: replicaProtocol,
		Logger:          log,
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
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
