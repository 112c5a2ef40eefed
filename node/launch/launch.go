package launch

import (
	"fmt"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/node/pbft"
	"github.com/pbftnode/pbftnode/node/raftnode"
)

// Start starts the runtime cfg.Consensus names: pbft.Start for PBFT (""
// too), raftnode.Start for Raft. filter is the PBFT runtime's fault
// injection (nil: a correct replica); Start refuses one for Raft.
func Start(cfg node.Config, filter pbft.Filter) (node.Runner, error) {
	switch cfg.Consensus {
	case "", config.ConsensusPBFT:
		n, err := pbft.Start(cfg, filter)
		if err != nil {
			return nil, err
		}
		return n, nil
	case config.ConsensusRaft:
		if filter != nil {
			return nil, fmt.Errorf("node: fault injection (Byzantine filters) applies to PBFT only")
		}
		n, err := raftnode.Start(cfg)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("node: unknown protocol %q", cfg.Consensus)
}
