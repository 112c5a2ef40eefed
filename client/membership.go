package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/wire"
)

// ErrNoConfiguration: no member answered a config_query with a
// configuration this client could verify before the context ended.
var ErrNoConfiguration = errors.New("client: no verifiable configuration")

// queryAnswer is one member's answer to a config_query.
type queryAnswer struct {
	replica uint32
	result  []byte
	refusal string
}

// offerAnswerLocked hands r to cl's Membership call (c.mu held): the
// first answer of each replica, copied (the frame is reused), dropped if
// the call's queue is full (a queue of twice the members cannot fill
// with first answers).
func offerAnswerLocked(cl *call, replica uint32, r *reply) {
	if int(replica) >= len(cl.replies) || cl.replies[replica].seen {
		return
	}
	cl.replies[replica].seen = true
	select {
	case cl.answers <- queryAnswer{replica: replica, result: append([]byte(nil), r.result...), refusal: string(r.refusal)}:
	default:
	}
}

// Epochs reports the membership epoch of the configuration the client
// was built with (Config.Epoch) and the highest epoch any member's reply
// reported since: above known, the membership changed and Membership
// learns the new one.
func (c *Client) Epochs() (known, seen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Epoch, c.epochSeen
}

// Membership asks every member for the cluster's configuration (a
// read-only request with config_query set) and returns the newest one it
// can verify, once every member answered one or, after the first verified
// answer, RetransmitTimeout passed (it asks again every RetransmitTimeout
// while none verified, until ctx ends: ErrNoConfiguration). A PBFT cluster (ReplyQuorum above
// 1) answers a history of configuration certificates, verified from
// Config.Genesis with membership.VerifyHistory: a configuration signed by
// a quorum of each previous one's members, never one replica's word. A
// Raft cluster (crash faults, ReplyQuorum 1) answers its leader's current
// configuration, taken as is.
func (c *Client) Membership(ctx context.Context) (membership.Config, error) {
	genesis, err := c.genesis()
	if err != nil {
		return membership.Config{}, err
	}
	cl, err := c.begin(ctx)
	if err != nil {
		return membership.Config{}, err
	}
	defer c.end(cl)
	c.mu.Lock()
	cl.readOnly, cl.answers = true, make(chan queryAnswer, 2*c.span)
	n := c.n // Follow may change it
	c.mu.Unlock()
	frame, err := c.queryFrame(cl.number)
	if err != nil {
		return membership.Config{}, err
	}
	c.sendAll(frame)
	timer := time.NewTimer(c.cfg.RetransmitTimeout)
	defer timer.Stop()
	var best *membership.Config
	var bestHistory []byte
	var reasons []error
	verified := make(map[uint32]bool, n)
	answered := make(map[uint32]bool, n) // since the last send
	for len(verified) < n {
		if best != nil && len(answered) == n {
			break // every member answered; some did not verify
		}
		select {
		case a := <-cl.answers:
			answered[a.replica] = true
			cfg, err := c.verifyAnswer(genesis, a)
			if err != nil {
				reasons = append(reasons, fmt.Errorf("replica %d: %w", a.replica, err))
				continue
			}
			verified[a.replica] = true
			if best == nil || cfg.Epoch > best.Epoch {
				best, bestHistory = &cfg, a.result
			}
			if c.crashFaults {
				return *best, nil // crash faults: the leader's answer is the one
			}
		case <-timer.C:
			if best != nil {
				c.keepHistory(*best, bestHistory)
				return *best, nil
			}
			// Lost, members not reached yet, or refused (a Raft follower,
			// an election): ask everyone again and hear them again.
			c.mu.Lock()
			clear(cl.replies)
			c.mu.Unlock()
			reasons = reasons[:0]
			clear(answered)
			c.sendAll(frame)
			timer.Reset(c.cfg.RetransmitTimeout)
		case <-ctx.Done():
			return membership.Config{}, fmt.Errorf("%w: %w (%w)", ErrNoConfiguration, ctx.Err(), errors.Join(reasons...))
		case <-c.done:
			return membership.Config{}, ErrClosed
		}
	}
	c.keepHistory(*best, bestHistory)
	return *best, nil
}

// keepHistory keeps a verified PBFT history for the receipts of its epoch
// (InvokeWithReceipt) when it is newer than the one held.
func (c *Client) keepHistory(cfg membership.Config, encoded []byte) {
	if c.crashFaults {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.history == nil || cfg.Epoch > c.historyEpoch {
		c.history, c.historyEpoch = bytes.Clone(encoded), cfg.Epoch
	}
}

// verifyAnswer returns the configuration one member's answer proves.
func (c *Client) verifyAnswer(genesis membership.Config, a queryAnswer) (membership.Config, error) {
	if a.refusal != "" {
		return membership.Config{}, fmt.Errorf("refused: %s", a.refusal)
	}
	if c.crashFaults {
		var h wire.ConfigHistory
		if len(a.result) > membership.MaxEncodedHistory {
			return membership.Config{}, fmt.Errorf("%w: %d bytes", membership.ErrBadCertificate, len(a.result))
		}
		if err := proto.Unmarshal(a.result, &h); err != nil {
			return membership.Config{}, fmt.Errorf("%w: %w", membership.ErrBadCertificate, err)
		}
		return membership.Decode(h.GetCurrent())
	}
	h, err := membership.DecodeHistory(a.result)
	if err != nil {
		return membership.Config{}, err
	}
	cfg, _, err := membership.VerifyHistory(c.cfg.ClusterID, genesis, h, c.rules())
	return cfg, err
}

// rules are Config.MembershipRules, or the default for the client's
// reply quorum.
func (c *Client) rules() membership.Rules {
	if c.cfg.MembershipRules != (membership.Rules{}) {
		return c.cfg.MembershipRules
	}
	if c.crashFaults {
		return membership.Rules{MinMembers: 1}
	}
	return membership.Rules{MinMembers: 4}
}

// genesis is Config.Genesis, or a configuration of epoch 0 derived from
// Replicas (their keys from their peer IDs; no administrators).
func (c *Client) genesis() (membership.Config, error) {
	if len(c.cfg.Genesis.Members) > 0 {
		return c.cfg.Genesis, nil
	}
	var g membership.Config
	c.mu.Lock()
	replicas := c.cfg.Replicas // replaced, never modified, by Follow
	c.mu.Unlock()
	for _, r := range replicas {
		pub, err := identity.PublicKeyFromPeerID(r.ID)
		if err != nil {
			return membership.Config{}, fmt.Errorf("client: replica %d: %w", r.Index, err)
		}
		addr := ""
		if r.Addr != nil {
			addr = r.Addr.String()
		}
		g.Members = append(g.Members, membership.Member{Index: r.Index, PublicKey: pub, Address: addr})
	}
	return g, nil
}

// queryFrame is a read-only request (unsigned: it travels only on the
// client's own authenticated stream) with config_query set.
func (c *Client) queryFrame(number uint64) ([]byte, error) {
	payload, err := proto.Marshal(&wire.Request{ClientId: c.id, RequestNumber: number, ReadOnly: true, ConfigQuery: true})
	if err != nil {
		return nil, fmt.Errorf("client: config query: %w", err)
	}
	frame, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: &wire.Signed{Payload: payload}}})
	if err != nil {
		return nil, fmt.Errorf("client: config query: %w", err)
	}
	return frame, nil
}

// Members returns cfg's members as transport members (what a client
// dials): a learned configuration's replacement for Config.Replicas.
func Members(cfg membership.Config) ([]p2p.Member, error) {
	out := make([]p2p.Member, len(cfg.Members))
	for i, m := range cfg.Members {
		id, err := identity.PeerIDFromPublicKey(m.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("client: member %d: %w", m.Index, err)
		}
		addr, err := multiaddr.NewMultiaddr(m.Address)
		if err != nil {
			return nil, fmt.Errorf("client: member %d: %w", m.Index, err)
		}
		out[i] = p2p.Member{Index: m.Index, ID: id, Addr: addr}
	}
	return out, nil
}

// ChangeConfig orders a configuration change: signedChange is an encoded
// membership.SignedChange, sent as a signed request's config_change.
// It returns the agreed result, which starts with
// execution.ConfigChangeAccepted or ConfigChangeRefused and says what
// happened; errors are Invoke's.
func (c *Client) ChangeConfig(ctx context.Context, signedChange []byte) ([]byte, error) {
	cl, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer c.end(cl)
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(&wire.Request{ClientId: c.id, RequestNumber: cl.number, ConfigChange: signedChange})
	if err != nil {
		return nil, fmt.Errorf("client: config change: %w", err)
	}
	sig := c.signer.Sign(crypto.DomainClientRequest, payload)
	frame, err := proto.Marshal(&wire.ClientFrame{Body: &wire.ClientFrame_Request{Request: &wire.Signed{Payload: payload, Signature: sig}}})
	if err != nil {
		return nil, fmt.Errorf("client: config change: %w", err)
	}
	return c.awaitFrame(ctx, cl, frame, nil)
}

// ClusterID returns the cluster id the client signs for.
func (c *Client) ClusterID() string { return c.cfg.ClusterID }

// MembershipRules returns the membership rules of the client's cluster
// (Config.MembershipRules, or the default for its reply quorum).
func (c *Client) MembershipRules() membership.Rules { return c.rules() }

// followState rate-limits background learning: at most one at a time,
// and none sooner than RetransmitTimeout after the previous one ended.
type followState struct {
	running bool
	last    time.Time
}

// followLocked starts learning the configuration in the background
// (c.mu held), unless one is running, one ended less than
// RetransmitTimeout ago, or the client is closed. Replies that report a
// newer epoch and requests that go unanswered call it.
func (c *Client) followLocked() {
	if c.follow.running || c.closed || time.Since(c.follow.last) < c.cfg.RetransmitTimeout {
		return
	}
	c.follow.running = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 8*c.cfg.RetransmitTimeout)
		defer cancel()
		if _, err := c.Follow(ctx); err != nil {
			c.log.Debug("learning the membership", "err", err)
		}
		c.mu.Lock()
		c.follow.running, c.follow.last = false, time.Now()
		c.mu.Unlock()
	}()
}

// Follow learns the configuration (Membership) and, when it is newer than
// the one the client uses, moves the client to its members without a
// restart: the transport's member set, where requests go, whose replies
// count and, when they were defaulted, the quorums (f+1 and 2f+1 of the
// new membership). Calls already waiting keep their reply slots; their
// retransmissions go to the new members. It returns the configuration
// learned. The client calls it by itself (in the background) when a
// reply reports a newer epoch or a request goes unanswered.
func (c *Client) Follow(ctx context.Context) (membership.Config, error) {
	cfg, err := c.Membership(ctx)
	if err != nil {
		return membership.Config{}, err
	}
	c.mu.Lock()
	known := c.cfg.Epoch
	c.mu.Unlock()
	if cfg.Epoch <= known {
		return cfg, nil
	}
	members, err := Members(cfg)
	if err != nil {
		return membership.Config{}, err
	}
	span, member, err := memberIndices(members)
	if err != nil {
		return membership.Config{}, err
	}
	if err := c.host.SetMembers(members); err != nil {
		return membership.Config{}, fmt.Errorf("client: follow epoch %d: %w", cfg.Epoch, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Epoch <= c.cfg.Epoch {
		return cfg, nil // a concurrent Follow got there first
	}
	n := len(members)
	c.cfg.Replicas, c.cfg.Epoch, c.n, c.span, c.member = members, cfg.Epoch, n, span, member
	if c.defaultReplyQuorum && c.cfg.ReplyQuorum > 1 {
		c.cfg.ReplyQuorum = (n-1)/3 + 1
	}
	if c.defaultReadQuorum && c.cfg.ReadQuorum > 1 {
		c.cfg.ReadQuorum = 2*((n-1)/3) + 1
	}
	if !c.isMember(c.leader) {
		c.leader = -1
	}
	c.reads.missed = nil
	c.log.Info("client follows a new membership", "epoch", cfg.Epoch, "members", cfg.Indices())
	return cfg, nil
}
