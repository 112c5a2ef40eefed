package config

import (
	"crypto/ed25519"
	"fmt"

	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/membership"
)

// Genesis returns the cluster file's configuration as epoch 0 of the
// membership: its replicas, its administrators and their threshold
// (AdminThreshold 0 with admins listed means all of them). Every replica
// and client of a cluster must derive the same genesis, so a chain of
// configuration certificates starts from the same place everywhere.
func (c ClusterFile) Genesis() (membership.Config, error) {
	var g membership.Config
	for _, r := range c.Replicas {
		pub, err := keyfile.DecodePublicKey(r.PublicKey)
		if err != nil {
			return membership.Config{}, fmt.Errorf("config: replica %d public_key: %w", r.Index, err)
		}
		g.Members = append(g.Members, membership.Member{Index: r.Index, PublicKey: pub, Address: r.Address})
	}
	for i, a := range c.Admins {
		pub, err := keyfile.DecodePublicKey(a)
		if err != nil {
			return membership.Config{}, fmt.Errorf("config: admins[%d]: %w", i, err)
		}
		g.Admins = append(g.Admins, ed25519.PublicKey(pub))
	}
	g.AdminThreshold = c.AdminThreshold
	if g.AdminThreshold == 0 {
		g.AdminThreshold = len(g.Admins)
	}
	if err := g.Check(); err != nil {
		return membership.Config{}, fmt.Errorf("config: %w", err)
	}
	return g, nil
}

// MembershipRules returns the rules a configuration change must pass in a
// cluster of the named consensus protocol: PBFT keeps at least 4 members
// (so one Byzantine member is still tolerated), Raft at least 1.
func MembershipRules(consensus string) membership.Rules {
	if consensus == ConsensusRaft {
		return membership.Rules{MinMembers: 1}
	}
	return membership.Rules{MinMembers: 4}
}
