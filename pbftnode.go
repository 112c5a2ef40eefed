package pbftnode

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/multiformats/go-multiaddr"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/apphost"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/launch"
)

// Status is a snapshot of a running replica (node.Status): its view or
// term, the last executed sequence, the state digest, the stable
// checkpoint, the leader it believes in.
type Status = node.Status

// Replica is a running replica of an application (StartReplica). Its
// methods are safe for concurrent use.
type Replica struct {
	runner node.Runner
}

// Option adjusts how StartReplica runs a replica.
type Option func(*options)

type options struct {
	logger *slog.Logger
	host   apphost.Options
}

// WithLogger sets the replica's logger (default: discard). The replica
// logs its start, the configuration's warnings, peers, view changes and
// state transfers on it.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHostOptions tunes how the replica keeps the application's state
// (apphost.Options: how often it snapshots the application, how large a
// journal or a snapshot may grow, how long a call may take, how it retries
// an application that failed). The zero value is apphost's defaults.
func WithHostOptions(h apphost.Options) Option { return func(o *options) { o.host = h } }

// StartReplica starts a replica of a from home: it loads home/config.json
// exactly as `pbftnode run --home HOME` does (the same rules; PBFT or Raft
// as the file says; fsync on unless the file sets unsafe_no_fsync), opens
// the replica's database in the file's data directory, brings a up to the
// replica's state (see package app: restore from the replica's snapshot
// and execute the recorded batches again; if a cannot be reached yet, the
// replica is not ready and retries before it executes anything) and joins
// the cluster. It returns once the replica is running; Close stops it. It
// fails on a configuration config.Check refuses, a database or records it
// cannot read, and an application found broken (see apphost).
//
// The configuration must not name another application: its application
// setting must be empty (a home written by WriteTestnet without
// Application). a must keep package app's contract; the replica calls it
// from one goroutine at a time. If a is an io.Closer, the replica's Close
// closes it. Start a replica's home with the same application every
// time: the replica's database holds that application's snapshots and
// journal.
func StartReplica(home string, a app.Application, opts ...Option) (*Replica, error) {
	if a == nil {
		return nil, errors.New("pbftnode: no application")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	h, cfg, err := launch.LoadHome(home, nil, o.logger)
	if err != nil {
		return nil, fmt.Errorf("pbftnode: %w", err)
	}
	if h.File.Application != "" {
		return nil, fmt.Errorf("pbftnode: %s names application %q: a library replica runs the application it is given; leave application out of its configuration", home, h.File.Application)
	}
	cfg.Application = apphost.Opener(a, o.host)
	r, err := launch.Start(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("pbftnode: start %s: %w", home, err)
	}
	cfg.Logger.Info("replica running", "protocol", h.Consensus, "index", cfg.Index, "listen", r.Addrs(), "metrics", r.MetricsAddr(), "replicas", len(cfg.Replicas))
	return &Replica{runner: r}, nil
}

// Close stops the replica: it stops calling the application (a call in
// progress is abandoned: the replica did not record its batch, and a later
// start brings the application back in sync), closes the application if
// it is an io.Closer, and closes its connections and its database. It is
// idempotent.
func (r *Replica) Close() error { return r.runner.Close() }

// Status returns what the replica reports on /status.
func (r *Replica) Status() Status { return r.runner.Status() }

// MetricsAddr is the address of the replica's /metrics, /healthz, /readyz
// and /status server (the file's metrics_listen), or "" without one.
func (r *Replica) MetricsAddr() string { return r.runner.MetricsAddr() }

// Addrs are the replica's listen addresses.
func (r *Replica) Addrs() []multiaddr.Multiaddr { return r.runner.Addrs() }
