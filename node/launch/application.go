package launch

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/node"
)

// ErrRemoteNotWired is what RemoteApplication returns while this build
// cannot connect to an application in another process.
var ErrRemoteNotWired = errors.New("applications in another process (grpc://, unix://) are not wired into this build yet")

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
// or unix:///PATH). This is where the appgrpc client is wired in; until
// then it returns ErrRemoteNotWired.
func RemoteApplication(spec config.ApplicationSpec) (execution.Opener, error) {
	return nil, fmt.Errorf("launch: application %s: %w", spec, ErrRemoteNotWired)
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
