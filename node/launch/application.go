package launch

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/pbftnode/pbftnode/appgrpc"
	"github.com/pbftnode/pbftnode/apphost"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/storage"
)

// Application returns the opener of the application home names
// (node.Config.Application): nil for the built-in key-value store, the
// built-in ledger with home's ledger issuers, or RemoteApplication's
// opener for grpc:// and unix:// settings. home passed config.Check, so
// its application setting is well formed.
func Application(home config.Home) (execution.Opener, error) {
	switch home.Application.Kind {
	case "", config.ApplicationKV:
		return nil, nil
	case config.ApplicationLedger:
		return ledger.Open(home.LedgerIssuers), nil
	case config.ApplicationGRPC, config.ApplicationUnix:
		return RemoteApplication(home.Application)
	}
	return nil, fmt.Errorf("launch: application %q: want %s", home.Application, config.ApplicationForms)
}

// RemoteApplication returns the opener of an application in another
// process serving the gRPC application protocol at spec (grpc://HOST:PORT
// or unix:///PATH): an appgrpc client, run under the executor by an
// apphost.Host, which records its snapshots and journal in the replica's
// database and brings the application back in sync whenever it restarts.
// The connection is made lazily: a replica starts while its application
// is down and is not ready (saying why) until it answers. The Host closes
// the client when the replica stops.
func RemoteApplication(spec config.ApplicationSpec) (execution.Opener, error) {
	target := spec.String()
	if _, err := appgrpc.ParseTarget(target); err != nil {
		return nil, fmt.Errorf("launch: application: %w", err)
	}
	return func(db *storage.DB, logger *slog.Logger) (execution.Application, error) {
		client, err := appgrpc.Dial(target, appgrpc.Options{})
		if err != nil {
			return nil, fmt.Errorf("launch: application %s: %w", target, err)
		}
		host, err := apphost.Open(db, client, apphost.Options{Where: target}, logger)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("launch: application %s: %w", target, err), client.Close())
		}
		return host, nil
	}, nil
}

// LoadReplica is LoadHome with Config.Application set by Application
// from the home's application setting: what `pbftnode run` starts.
func LoadReplica(home string, overrides *config.Flags, logger *slog.Logger) (config.Home, node.Config, error) {
	h, cfg, err := LoadHome(home, overrides, logger)
	if err != nil {
		return config.Home{}, node.Config{}, err
	}
	if cfg.Application, err = Application(h); err != nil {
		return config.Home{}, node.Config{}, fmt.Errorf("%s: %w", home, err)
	}
	return h, cfg, nil
}
