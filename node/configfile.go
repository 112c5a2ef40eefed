package node

import (
	"fmt"
	"path/filepath"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/p2p"
)

// ConfigFromHome builds the runtime's Config from a home that passed
// config.Check (config.Load), with the runtime's defaults applied.
func ConfigFromHome(h config.Home) (Config, error) {
	cfg := Config{
		ClusterID:       h.File.ClusterID,
		Index:           h.File.Index,
		Key:             h.Key,
		Replicas:        h.Replicas,
		Self:            h.Self,
		Spare:           h.Spare,
		Genesis:         h.Genesis,
		ListenAddr:      h.ListenAddr,
		MetricsAddr:     h.File.MetricsListen,
		DataDir:         h.DataDir,
		Sync:            !h.File.UnsafeNoFsync,
		ClientAllowlist: h.ClientAllowlist,
		ClientRateLimit: h.File.ClientRateLimit,
		ClientRateBurst: h.File.ClientRateBurst,
		PBFT:            h.PBFT,
		Raft:            h.Raft,
		Consensus:       h.Consensus,
		TickInterval:    h.TickInterval,
	}
	cfg.NoReceipts = h.File.Receipts != nil && !*h.File.Receipts
	cfg.ReceiptsCachedOnly = h.File.ReceiptsCachedOnly
	cfg.CheckDirectCommits = h.File.CheckDirectCommits
	cfg.CommittedRepliesOnly = h.File.CommittedRepliesOnly
	if err := cfg.ApplyDefaults(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", h.Dir, err)
	}
	return cfg, nil
}

// LoadHome loads a replica's home with config.Load (home/config.json,
// overrides applied, config.Check's rules; overrides may be nil) and
// builds its Config. It refuses every configuration config.Check finds a
// problem in.
func LoadHome(home string, overrides *config.Flags) (Config, error) {
	h, err := config.Load(home, overrides)
	if err != nil {
		return Config{}, err
	}
	return ConfigFromHome(h)
}

// ReadClientFile reads DIR/client.json and returns it with its replicas as
// transport members (what a client dials). It refuses a file whose cluster
// settings config's rules refuse (ClusterFile.Decode).
func ReadClientFile(dir string) (config.ClientFile, []p2p.Member, error) {
	var cf config.ClientFile
	if err := config.ReadJSON(filepath.Join(dir, "client.json"), &cf); err != nil {
		return cf, nil, err
	}
	replicas, err := cf.Decode()
	if err != nil {
		return cf, nil, err
	}
	members := make([]p2p.Member, len(replicas))
	for i, r := range replicas {
		if members[i], err = Member(r); err != nil {
			return cf, nil, err
		}
	}
	return cf, members, nil
}
