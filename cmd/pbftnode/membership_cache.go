package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/membership"
)

// membershipCacheFile, under DIR/sessions, holds the newest configuration
// a command of the directory learned (client.Membership: verified from
// the genesis for PBFT), so that later commands reach the current members
// even after the cluster file's members were removed or their keys
// rotated.
const membershipCacheFile = "membership.json"

// learnTimeout bounds how long a command spends learning the
// configuration after its operation (a hint for later commands).
const learnTimeout = 5 * time.Second

// membershipCache is the file's content: the cluster it belongs to (a
// directory rewritten for another cluster keeps its sessions) and the
// encoded membership.Config.
type membershipCache struct {
	ClusterID string `json:"cluster_id"`
	Config    []byte `json:"config"`
}

// cachedMembership returns the configuration the directory's commands
// learned for clusterID, if any newer than the genesis.
func cachedMembership(dir, clusterID string) (membership.Config, bool) {
	var mc membershipCache
	if err := config.ReadJSON(filepath.Join(dir, "sessions", membershipCacheFile), &mc); err != nil || mc.ClusterID != clusterID {
		return membership.Config{}, false
	}
	cfg, err := membership.Decode(mc.Config)
	if err != nil || cfg.Epoch == 0 {
		return membership.Config{}, false
	}
	return cfg, true
}

// useCachedMembership points cfg at the members of the configuration the
// directory's commands learned last, when there is one.
func useCachedMembership(dir string, cfg *client.Config) {
	learned, ok := cachedMembership(dir, cfg.ClusterID)
	if !ok || learned.Epoch <= cfg.Epoch {
		return
	}
	members, err := client.Members(learned)
	if err != nil {
		return
	}
	cfg.Replicas, cfg.Epoch = members, learned.Epoch
}

// storeMembership records cfg as the directory's newest known
// configuration unless the cache already holds a newer one. Best effort:
// a lost cache costs a later command a config_query.
func storeMembership(dir, clusterID string, cfg membership.Config) {
	if cached, ok := cachedMembership(dir, clusterID); ok && cached.Epoch >= cfg.Epoch {
		return
	}
	slots := filepath.Join(dir, "sessions")
	if err := os.MkdirAll(slots, 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(slots, membershipCacheFile+".*")
	if err != nil {
		return
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if config.WriteJSON(tmp.Name(), membershipCache{ClusterID: clusterID, Config: cfg.Encode()}, 0o600) != nil {
		return
	}
	_ = os.Rename(tmp.Name(), filepath.Join(slots, membershipCacheFile))
}

// learnMembership asks c's members for the configuration and caches it
// for the directory. It returns the configuration learned.
func learnMembership(ctx context.Context, dir, clusterID string, c *client.Client) (membership.Config, error) {
	cfg, err := c.Membership(ctx)
	if err != nil {
		return membership.Config{}, fmt.Errorf("learning the configuration: %w", err)
	}
	storeMembership(dir, clusterID, cfg)
	return cfg, nil
}

// learnIfMoved learns the configuration when c's replies reported an
// epoch above the one the directory's cache holds (the client may have
// followed it already; the cache has not).
func learnIfMoved(dir, clusterID string, c *client.Client) {
	cached := uint64(0)
	if cfg, ok := cachedMembership(dir, clusterID); ok {
		cached = cfg.Epoch
	}
	if _, seen := c.Epochs(); seen > cached {
		ctx, cancel := context.WithTimeout(context.Background(), learnTimeout)
		defer cancel()
		_, _ = learnMembership(ctx, dir, clusterID, c)
	}
}
