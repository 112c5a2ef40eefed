package node

import (
	"fmt"

	"github.com/multiformats/go-multiaddr"

	"github.com/pbftnode/pbftnode/config"
)

// Runner is a running replica of either protocol: *Node (PBFT) or
// *RaftNode (Raft).
type Runner interface {
	Status() Status
	Addrs() []multiaddr.Multiaddr
	MetricsAddr() string
	DatabaseSize() (int64, error)
	Close() error
}

// Launch starts the runtime cfg.Consensus names.
func Launch(cfg Config) (Runner, error) {
	switch cfg.Consensus {
	case "", config.ConsensusPBFT:
		n, err := Start(cfg)
		if err != nil {
			return nil, err
		}
		return n, nil
	case config.ConsensusRaft:
		if cfg.Filter != nil {
			return nil, fmt.Errorf("node: fault injection (Byzantine filters) applies to PBFT only")
		}
		n, err := StartRaft(cfg)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("node: unknown protocol %q", cfg.Consensus)
}
