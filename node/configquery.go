package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
)

// ConfigQuerier asks members for the cluster's configuration history
// (config_query) as a client: what a replica that is not a member yet (a
// spare, a replica restarted with a rotated key) or may have been removed
// does to learn where it stands. Both runtimes use it; what an answer is
// worth (a PBFT history verified from the genesis, the Raft leader's
// current configuration) is theirs to decide.
//
// It asks under a fresh client key of its own: a replica's key is its
// transport identity, which must not open client streams beside its
// links. A config_query is read-only, so it travels unsigned.
type ConfigQuerier struct {
	key      ed25519.PrivateKey
	clientID []byte
	number   uint64
	log      *slog.Logger
}

// NewConfigQuerier returns a querier with a fresh key.
func NewConfigQuerier(log *slog.Logger) (*ConfigQuerier, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: config querier key: %w", err)
	}
	clientID, err := crypto.ClientID(pub, []byte("config-query"))
	if err != nil {
		return nil, fmt.Errorf("node: config querier id: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ConfigQuerier{key: priv, clientID: clientID, log: log}, nil
}

// Ask sends one config_query to each of members (those other than skip)
// and hands the result of each answer to it to accept, until accept
// returns true, every member answered, timeout passed or ctx ended. It
// reports whether accept returned true. Answers that are errors or answer
// another request are ignored.
func (q *ConfigQuerier) Ask(ctx context.Context, members []membership.Member, skip uint32, timeout time.Duration, accept func(result []byte) bool) bool {
	q.number++
	number := q.number
	var peers []p2p.Member
	for _, m := range members {
		if m.Index == skip {
			continue
		}
		pm, err := Member(Replica{Index: m.Index, PublicKey: m.PublicKey, Addr: m.Address})
		if err != nil {
			continue
		}
		peers = append(peers, pm)
	}
	if len(peers) == 0 {
		return false
	}
	key, err := identity.LibP2PPrivateKey(q.key)
	if err != nil {
		q.log.Warn("config query: client key", "err", err)
		return false
	}
	h, err := p2p.New(p2p.Config{PrivateKey: key, Self: -1, Members: peers, Logger: q.log})
	if err != nil {
		q.log.Warn("config query: client host", "err", err)
		return false
	}
	defer func() { _ = h.Close() }()
	payload, _ := proto.Marshal(&wire.Request{ClientId: q.clientID, RequestNumber: number, ReadOnly: true, ConfigQuery: true})
	frame, _ := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: &wire.Signed{Payload: payload}}})
	for _, m := range peers {
		h.SendToReplica(m.Index, frame)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for answers := 0; answers < len(peers); {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case f, ok := <-h.Replies():
			if !ok {
				return false
			}
			var r wire.Reply
			if proto.Unmarshal(f.Data, &r) != nil || r.GetRequestNumber() != number || r.GetError() != "" {
				continue
			}
			answers++
			if accept(r.GetResult()) {
				return true
			}
		}
	}
	return false
}
