package launch

import (
	"log/slog"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/node"
)

// LoadHome loads a replica's home the one way every starter does
// (`pbftnode run` and the pbftnode library): config.Load (home/config.json,
// overrides applied, config.Check's rules; overrides may be nil), then
// node.ConfigFromHome, with logger (nil: discard) as the replica's logger
// and each of Check's warnings logged on it. It returns the checked home
// too, for the settings the runtime's Config does not carry (the
// application the file names). The caller sets Config.Application and
// starts the runtime (Start).
func LoadHome(home string, overrides *config.Flags, logger *slog.Logger) (config.Home, node.Config, error) {
	h, err := config.Load(home, overrides)
	if err != nil {
		return config.Home{}, node.Config{}, err
	}
	cfg, err := node.ConfigFromHome(h)
	if err != nil {
		return config.Home{}, node.Config{}, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = logger
	for _, w := range h.Warnings {
		logger.Warn("configuration: " + w)
	}
	return h, cfg, nil
}
