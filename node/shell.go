package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/storage"
)

// shell is what both runtimes (Node for PBFT, RaftNode for Raft) own
// beside their core: the transport, the database, the operations HTTP
// server, and the goroutines' lifetime. It is embedded, so its fields and
// methods are the runtimes' own.
type shell struct {
	host     *p2p.Host
	db       *storage.DB
	http     *http.Server
	metricsL net.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Addrs returns the transport's listen addresses.
func (s *shell) Addrs() []multiaddr.Multiaddr { return s.host.Addrs() }

// MetricsAddr returns the metrics listener's address, or "".
func (s *shell) MetricsAddr() string {
	if s.metricsL == nil {
		return ""
	}
	return s.metricsL.Addr().String()
}

// DatabaseSize returns the size of the replica's database files.
func (s *shell) DatabaseSize() (int64, error) { return s.db.SizeBytes() }

// shutdown stops the replica once: it cancels the goroutines, closes the
// host (which ends its inbound channels' producers; the goroutines stop on
// their context), waits for them, then releases the resources, calling
// release (nil: nothing) before the database closes.
func (s *shell) shutdown(release func()) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	err := s.host.Close()
	s.wg.Wait()
	return errors.Join(err, s.closeResources(release))
}

// closeResources releases what a (possibly half-started) replica holds.
func (s *shell) closeResources(release func()) error {
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Close())
	}
	if s.host != nil && !s.closed.Load() {
		errs = append(errs, s.host.Close())
	}
	if release != nil {
		release()
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}

// startHost starts the replica's transport: its libp2p identity from
// cfg.Key, the members from cfg.Replicas, clients admitted per cfg's
// allowlist and rate limit, and replicaProtocol between replicas (""
// for PBFT's).
func (s *shell) startHost(cfg Config, replicaProtocol protocol.ID, log *slog.Logger) error {
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
	s.host, err = p2p.New(p2p.Config{
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
