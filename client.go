package pbftnode

import (
	"fmt"
	"time"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/keyfile"
	"github.com/pbftnode/pbftnode/node"
)

// ClientOption adjusts a client's configuration before Dial starts it
// (for example its Key, to act as another account, or its Logger).
type ClientOption func(*client.Config)

// ClientConfig reads DIR/client.json (what WriteTestnet and `pbftnode
// testnet` write) and the plain key file it names (key_file, default
// DIR/client.key) into a client configuration: the cluster, its replicas,
// the signing key (the account the client acts for: replace Key to act
// for another) and how many matching replies make a result (f+1 for
// PBFT, 1 for the crash-fault Raft mode). Session is nil, so each client
// started from it has a session of its own and many may share the key at
// once.
func ClientConfig(dir string) (client.Config, error) {
	cf, members, err := node.ReadClientFile(dir)
	if err != nil {
		return client.Config{}, fmt.Errorf("pbftnode: %w", err)
	}
	key, err := keyfile.Read(cf.KeyPath(dir))
	if err != nil {
		return client.Config{}, fmt.Errorf("pbftnode: %w", err)
	}
	quorum := 0 // the client's default: f+1 matching replies
	if cf.Consensus == config.ConsensusRaft {
		quorum = 1 // crash faults only: any replica's reply is correct
	}
	genesis, err := cf.Genesis()
	if err != nil {
		return client.Config{}, fmt.Errorf("pbftnode: %w", err)
	}
	return client.Config{
		ClusterID: cf.ClusterID, Key: key, Replicas: members, ReplyQuorum: quorum, RetransmitTimeout: 500 * time.Millisecond,
		Genesis: genesis, MembershipRules: config.MembershipRules(cf.Consensus),
	}, nil
}

// Dial starts a client of the cluster DIR/client.json describes
// (ClientConfig), with opts applied in order (one may set another Key).
// The client is safe for concurrent use; Close it when done.
func Dial(dir string, opts ...ClientOption) (*client.Client, error) {
	cfg, err := ClientConfig(dir)
	if err != nil {
		return nil, err
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("pbftnode: %w", err)
	}
	return c, nil
}
