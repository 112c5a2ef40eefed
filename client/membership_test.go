package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pbftnode/pbftnode/crypto/cryptotest"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/wire"
)

const membershipTestCluster = "membership-test"

// chain is a cluster's genesis and the keys to extend it: members' keys
// by index, and the one administrator's.
type chain struct {
	genesis membership.Config
	keys    map[uint32]ed25519.PrivateKey
	admin   ed25519.PrivateKey
	history membership.History
	current membership.Config
	from    uint64
}

func newChain(t *testing.T) *chain {
	ch := &chain{keys: map[uint32]ed25519.PrivateKey{}, admin: cryptotest.Key(t, 900)}
	for i := range uint32(4) {
		ch.genesis.Members = append(ch.genesis.Members, ch.member(t, i))
	}
	ch.genesis.Admins, ch.genesis.AdminThreshold = []ed25519.PublicKey{ch.admin.Public().(ed25519.PublicKey)}, 1
	ch.current = ch.genesis
	return ch
}

func (ch *chain) member(t *testing.T, index uint32) membership.Member {
	k := cryptotest.Key(t, int64(100+index))
	ch.keys[index] = k
	return membership.Member{Index: index, PublicKey: k.Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 26600+index)}
}

// add appends a certificate adding replica index, voted by the members
// of the current configuration whose keys are voters (nil: every member
// with its own key).
func (ch *chain) add(t *testing.T, index uint32, voters map[uint32]ed25519.PrivateKey) {
	change := membership.Change{Epoch: ch.current.Epoch, Kind: membership.AddReplica, Member: ch.member(t, index)}
	sc := membership.SignedChange{Change: change.Encode()}
	sc.Signatures = append(sc.Signatures, membership.Sign(membershipTestCluster, sc.Change, ch.admin))
	next, _, err := ch.current.Apply(membershipTestCluster, sc, membership.Rules{MinMembers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ch.from += 10
	cert := membership.Certificate{Change: sc, Config: next, Sequence: ch.from}
	digest := next.Digest()
	for _, m := range ch.current.Members {
		key := ch.keys[m.Index]
		if voters != nil {
			if key = voters[m.Index]; key == nil {
				continue
			}
		}
		v := membership.Vote{Epoch: next.Epoch, ConfigDigest: digest, Sequence: ch.from, From: m.Index}
		cert.Votes = append(cert.Votes, membership.SignVote(membershipTestCluster, v, key))
	}
	ch.history.Certificates = append(ch.history.Certificates, cert)
	ch.current = next
}

func (ch *chain) encode() []byte { return ch.history.Encode(ch.genesis) }

// membershipClient is a test client of ch's genesis whose sends are
// reported on the returned channel.
func membershipClient(t *testing.T, ch *chain) (*Client, chan uint32) {
	c := newTestClient(t, 64)
	c.cfg.ClusterID, c.cfg.Genesis, c.cfg.RetransmitTimeout = membershipTestCluster, ch.genesis, time.Minute
	sent := make(chan uint32, 64)
	c.send = func(to uint32, _ []byte) bool { sent <- to; return true }
	return c, sent
}

// answerAll runs Membership on c, answering each member i with
// answers[i], and returns its result.
func answerAll(t *testing.T, c *Client, sent chan uint32, answers [][]byte) (membership.Config, error) {
	return answerAllWithin(t, c, sent, answers, time.Minute)
}

// answerAllWithin is answerAll with Membership's context ending after
// timeout.
func answerAllWithin(t *testing.T, c *Client, sent chan uint32, answers [][]byte, timeout time.Duration) (membership.Config, error) {
	t.Helper()
	type result struct {
		cfg membership.Config
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		cfg, err := c.Membership(ctx)
		done <- result{cfg, err}
	}()
	for range answers {
		<-sent // the query is out: request number 1
	}
	for i, a := range answers {
		c.handleReply(replyFrame(t, i, &wire.Reply{ClientId: c.id, RequestNumber: 1, Replica: uint32(i), Result: a, ReadOnly: true}))
	}
	r := <-done
	return r.cfg, r.err
}

// TestMembershipVerifiesHistory: the client takes the newest
// configuration a history of certificates proves from its genesis, and
// never a forged one: votes from keys that are not the members' do not
// make a quorum, however new the epoch it claims.
func TestMembershipVerifiesHistory(t *testing.T) {
	genuine := newChain(t)
	genuine.add(t, 4, nil)
	genuine.add(t, 5, nil)

	// A forger holding one member's key (replica 0, faulty) and keys of
	// its own claims a third epoch.
	forged := newChain(t)
	forged.add(t, 4, nil)
	forged.add(t, 5, nil)
	forged.add(t, 6, map[uint32]ed25519.PrivateKey{0: forged.keys[0], 1: cryptotest.Key(t, 7001), 2: cryptotest.Key(t, 7002), 3: cryptotest.Key(t, 7003)})

	stale := newChain(t) // genesis only: a correct replica that lags
	c, sent := membershipClient(t, genuine)
	cfg, err := answerAll(t, c, sent, [][]byte{forged.encode(), stale.encode(), genuine.encode(), stale.encode()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Epoch != 2 || fmt.Sprint(cfg.Indices()) != "[0 1 2 3 4 5]" {
		t.Fatalf("learned epoch %d, members %v; want the genuine epoch 2 of [0 1 2 3 4 5]", cfg.Epoch, cfg.Indices())
	}

	// Only the forged history and stale ones: the genesis stands.
	c, sent = membershipClient(t, genuine)
	cfg, err = answerAll(t, c, sent, [][]byte{forged.encode(), stale.encode(), stale.encode(), []byte("junk")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Epoch != 0 {
		t.Fatalf("learned epoch %d from a forged history, want 0", cfg.Epoch)
	}

	// Nothing verifies: an error once the context ends, not a
	// configuration.
	c, sent = membershipClient(t, genuine)
	if _, err := answerAllWithin(t, c, sent, [][]byte{forged.encode(), []byte("junk"), forged.encode(), forged.encode()}, time.Second); !errors.Is(err, ErrNoConfiguration) {
		t.Fatalf("only forged answers: %v, want ErrNoConfiguration", err)
	}
}

// TestClientFollowsNewMembership: a reply reporting a newer epoch makes a
// running client learn the configuration and move to its members: a
// member added after the client started (index 5) is then one whose
// reply completes a call, and a removed one (index 0) is no longer asked
// or heard.
func TestClientFollowsNewMembership(t *testing.T) {
	ch := newChain(t)
	genesisMembers, err := Members(ch.genesis)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{
		ClusterID: membershipTestCluster, Key: cryptotest.Key(t, 555), Replicas: genesisMembers, ReplyQuorum: 1,
		Genesis: ch.genesis, RetransmitTimeout: 200 * time.Millisecond, FirstRequestNumber: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	next := ch.genesis.Clone()
	next.Epoch = 2
	next.Members = append(next.Members[1:], ch.member(t, 5))
	next.Retired = []uint32{0}
	current := membership.History{}.Encode(next) // what a Raft leader answers

	// A reply (to no call) that reports epoch 2 starts the learning.
	c.handleReply(replyFrame(t, 1, &wire.Reply{ClientId: c.id, RequestNumber: 1, Replica: 1, Epoch: 2}))
	deadline := time.Now().Add(time.Minute)
	for known, _ := c.Epochs(); known != 2; known, _ = c.Epochs() {
		if time.Now().After(deadline) {
			t.Fatal("the client did not follow epoch 2")
		}
		c.mu.Lock()
		var query uint64
		for number, cl := range c.outstanding {
			if cl.answers != nil {
				query = number
			}
		}
		c.mu.Unlock()
		if query != 0 {
			c.handleReply(replyFrame(t, 2, &wire.Reply{ClientId: c.id, RequestNumber: query, Replica: 2, Result: current, ReadOnly: true, Epoch: 2}))
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	n, member0, member5, quorum := c.n, c.isMember(0), c.isMember(5), c.cfg.ReplyQuorum
	c.mu.Unlock()
	if n != 4 || member0 || !member5 || quorum != 1 {
		t.Fatalf("after following: %d members, 0 a member %v, 5 a member %v, reply quorum %d", n, member0, member5, quorum)
	}

	done := make(chan error, 1)
	go func() {
		res, err := c.Invoke(context.Background(), []byte("op"))
		if err == nil && string(res) != "from 5" {
			err = fmt.Errorf("result %q", res)
		}
		done <- err
	}()
	var number uint64
	for number == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the call did not start")
		}
		c.mu.Lock()
		for n, cl := range c.outstanding {
			if cl.answers == nil {
				number = n
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	c.handleReply(replyFrame(t, 0, &wire.Reply{ClientId: c.id, RequestNumber: number, Replica: 0, Result: []byte("from removed 0")}))
	c.handleReply(replyFrame(t, 5, &wire.Reply{ClientId: c.id, RequestNumber: number, Replica: 5, Result: []byte("from 5")}))
	if err := <-done; err != nil {
		t.Fatalf("a call after following: %v", err)
	}
}
