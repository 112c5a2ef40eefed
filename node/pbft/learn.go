package pbft

import (
	"context"
	"time"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
)

// learnInterval is how often a joiner asks for the configuration history.
const learnInterval = 2 * time.Second

// learnMaxInterval bounds the interval while the answers hold nothing new.
const learnMaxInterval = 30 * time.Second

// learnHistory runs on a joiner (a spare, or a replica restarted with a
// rotated key) while it is not a member of the configuration in force:
// beside the driver's CONFIG requests, it asks the members of the genesis
// and of the newest configuration it knows for the history with a
// config_query, as a client under a fresh key (the client protocol
// reaches members whose transport does not admit it yet), verifies each
// answer from the genesis (membership.VerifyHistory) and hands the
// certificates of the longest verified one to the event loop, which steps
// them in order (Driver.StepConfigCertificate checks each again).
func (n *Node) learnHistory(ctx context.Context) {
	if !n.epochs || !(n.cfg.Spare || n.cfg.KeyRotated) {
		return
	}
	q, err := node.NewConfigQuerier(n.log)
	if err != nil {
		n.log.Error("joiner: cannot ask for the configuration", "err", err)
		return
	}
	wait := learnInterval
	for ctx.Err() == nil {
		st := n.epochNow.Load()
		if st == nil || !st.Member {
			progress := false
			if h, ok := n.queryHistory(ctx, q); ok {
				for _, c := range h.Certificates {
					if st == nil || c.Config.Epoch > st.Config.Epoch {
						progress = true
						n.push(ctx, input{config: &configInput{cert: c.Wire()}})
					}
				}
			}
			// Nothing newer (not added yet, or removed): ask less often.
			if progress {
				wait = learnInterval
			} else {
				wait = min(2*wait, learnMaxInterval)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// queryHistory asks the members this replica knows for the history once
// and returns the longest answer verified from the genesis, within
// learnInterval.
func (n *Node) queryHistory(ctx context.Context, q *node.ConfigQuerier) (membership.History, bool) {
	var best membership.History
	found := false
	q.Ask(ctx, n.knownMembers(), n.cfg.Index, learnInterval, func(result []byte) bool {
		if hist, err := n.verifiedHistory(result); err == nil && (!found || len(hist.Certificates) > len(best.Certificates)) {
			best, found = hist, true
		}
		return false // hear every member: the longest verified history wins
	})
	return best, found
}

// pbftRules are the membership rules of a PBFT cluster.
func pbftRules() membership.Rules { return config.MembershipRules(config.ConsensusPBFT) }

// verifiedHistory decodes an answer to config_query and verifies its
// history from the genesis.
func (n *Node) verifiedHistory(result []byte) (membership.History, error) {
	h, err := membership.DecodeHistory(result)
	if err != nil {
		return membership.History{}, err
	}
	if _, _, err := membership.VerifyHistory(n.cfg.ClusterID, n.cfg.Genesis, h, pbftRules()); err != nil {
		return membership.History{}, err
	}
	return h, nil
}

// knownMembers are the members of the newest configuration this replica
// knows and of the genesis (each index once, the newest record first).
func (n *Node) knownMembers() []membership.Member {
	configs := []membership.Config{n.cfg.Genesis}
	if st := n.epochNow.Load(); st != nil {
		configs = append([]membership.Config{st.Config}, configs...)
	}
	seen := map[uint32]bool{}
	var out []membership.Member
	for _, c := range configs {
		for _, m := range c.Members {
			if !seen[m.Index] {
				seen[m.Index] = true
				out = append(out, m)
			}
		}
	}
	return out
}
