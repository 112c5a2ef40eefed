package pbft

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
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
	q, err := newJoinerClient(n.cfg.ClusterID)
	if err != nil {
		n.log.Error("joiner: cannot ask for the configuration", "err", err)
		return
	}
	wait := learnInterval
	for number := uint64(1); ctx.Err() == nil; number++ {
		st := n.epochNow.Load()
		if st == nil || !st.Member {
			progress := false
			if h, ok := n.queryHistory(ctx, q, number); ok {
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
func (n *Node) queryHistory(ctx context.Context, q joinerClient, number uint64) (membership.History, bool) {
	members := n.knownMembers()
	if len(members) == 0 {
		return membership.History{}, false
	}
	h, err := p2p.New(p2p.Config{PrivateKey: q.key, Self: -1, Members: members, Logger: n.log})
	if err != nil {
		n.log.Warn("joiner: client host", "err", err)
		return membership.History{}, false
	}
	defer func() { _ = h.Close() }()
	payload, _ := proto.Marshal(&wire.Request{ClientId: q.clientID, RequestNumber: number, ReadOnly: true, ConfigQuery: true})
	signed := &wire.Signed{Payload: payload, Signature: q.signer.Sign(crypto.DomainClientRequest, payload)}
	frame, _ := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: signed}})
	for _, m := range members {
		h.SendToReplica(m.Index, frame)
	}
	timeout := time.NewTimer(learnInterval)
	defer timeout.Stop()
	var best membership.History
	found := false
	for answers := 0; answers < len(members); {
		select {
		case <-ctx.Done():
			return best, found
		case <-timeout.C:
			return best, found
		case f, ok := <-h.Replies():
			if !ok {
				return best, found
			}
			answers++
			if hist, err := n.verifiedAnswer(f.Data, number); err == nil && (!found || len(hist.Certificates) > len(best.Certificates)) {
				best, found = hist, true
			}
		}
	}
	return best, found
}

// joinerClient is the client identity a joiner asks with: a fresh key
// (the replica's key is its transport identity, which must not open
// client streams beside its links), its client id and signer.
type joinerClient struct {
	key      libp2pcrypto.PrivKey
	clientID []byte
	signer   *crypto.Signer
}

func newJoinerClient(clusterID string) (joinerClient, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return joinerClient{}, err
	}
	key, err := identity.LibP2PPrivateKey(priv)
	if err != nil {
		return joinerClient{}, err
	}
	clientID, err := crypto.ClientID(pub, []byte("joiner"))
	if err != nil {
		return joinerClient{}, err
	}
	return joinerClient{key: key, clientID: clientID, signer: crypto.NewSigner(priv, clusterID)}, nil
}

// pbftRules are the membership rules of a PBFT cluster.
func pbftRules() membership.Rules { return config.MembershipRules(config.ConsensusPBFT) }

// verifiedAnswer decodes an answer to config_query number and verifies
// its history from the genesis.
func (n *Node) verifiedAnswer(data []byte, number uint64) (membership.History, error) {
	var r wire.Reply
	if err := proto.Unmarshal(data, &r); err != nil {
		return membership.History{}, fmt.Errorf("reply: %w", err)
	}
	if r.GetRequestNumber() != number || r.GetError() != "" {
		return membership.History{}, fmt.Errorf("not an answer to query %d", number)
	}
	h, err := membership.DecodeHistory(r.GetResult())
	if err != nil {
		return membership.History{}, err
	}
	if _, _, err := membership.VerifyHistory(n.cfg.ClusterID, n.cfg.Genesis, h, pbftRules()); err != nil {
		return membership.History{}, err
	}
	return h, nil
}

// knownMembers are the transport members of the genesis and of the
// newest configuration this replica knows, itself excepted.
func (n *Node) knownMembers() []p2p.Member {
	configs := []membership.Config{n.cfg.Genesis}
	if st := n.epochNow.Load(); st != nil {
		configs = append([]membership.Config{st.Config}, configs...)
	}
	seen := map[uint32]bool{n.cfg.Index: true}
	var out []p2p.Member
	for _, c := range configs {
		for _, m := range c.Members {
			if seen[m.Index] {
				continue
			}
			seen[m.Index] = true
			if pm, err := node.Member(node.Replica{Index: m.Index, PublicKey: m.PublicKey, Addr: m.Address}); err == nil {
				out = append(out, pm)
			}
		}
	}
	return out
}
