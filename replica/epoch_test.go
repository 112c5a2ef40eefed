package replica

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// An epoch test cluster: nodes by member index, each a driver with
// Epochs over MemoryStorage and an executor WithMembership; the network
// translates core positions to member indices per the sender's epoch.

const epochK = 2

type epochNode struct {
	c        *epochCluster
	index    uint32
	key      ed25519.PrivateKey
	store    *MemoryStorage
	db       *storage.DB
	exec     *execution.Executor
	snaps    *MemorySnapshots
	driver   *Driver
	verifier *protocol.MessageVerifier
	// executed is the (epoch, digest) of each batch executed, by sequence.
	executed map[uint64]executedBatch
	down     bool
}

type executedBatch struct {
	epoch  uint64
	digest crypto.Digest
}

type epochMsg struct {
	from, to uint32
	frame    []byte
	vote     *wire.Signed
	cert     *wire.ConfigCertificate
	// askAfter, when positive, asks for the certificates after epoch askAfter-1.
	askAfter uint64
}

type epochCluster struct {
	t       *testing.T
	genesis membership.Config
	admin   ed25519.PrivateKey
	client  ed25519.PrivateKey
	nodes   map[uint32]*epochNode
	queue   []epochMsg
	number  uint64
	// halt, when set, stops deliver (leaving the queue) once it is true.
	halt func() bool
}

func newEpochCluster(t *testing.T, n, spares int) *epochCluster {
	t.Helper()
	c := &epochCluster{t: t, admin: testKey("admin", 0), client: testKey("client", 0), nodes: map[uint32]*epochNode{}}
	c.genesis = membership.Config{Admins: []ed25519.PublicKey{c.admin.Public().(ed25519.PublicKey)}, AdminThreshold: 1}
	for i := range n + spares {
		key := testKey("replica", i)
		if i < n {
			c.genesis.Members = append(c.genesis.Members, membership.Member{Index: uint32(i), PublicKey: key.Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 9000+i)})
		}
		db, err := storage.OpenMem(storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		node := &epochNode{c: c, index: uint32(i), key: key, store: NewMemoryStorage(), db: db}
		c.nodes[uint32(i)] = node
	}
	for i := range n + spares {
		c.nodes[uint32(i)].start()
	}
	return c
}

func (c *epochCluster) verifierFor(cfg membership.Config) *protocol.MessageVerifier {
	pubs := make([]ed25519.PublicKey, len(cfg.Members))
	for i, m := range cfg.Members {
		pubs[i] = m.PublicKey
	}
	v := protocol.NewMessageVerifier(testClusterID, pubs, nil, nil, 0).WithEpoch(cfg.Epoch)
	v.SetWindowSize(2 * epochK)
	return v
}

// start (re)starts the node over its storage, as after a crash.
func (n *epochNode) start() {
	t := n.c.t
	t.Helper()
	kv, err := execution.NewKV(n.db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	rules := execution.MembershipRules{ClusterID: testClusterID, Genesis: n.c.genesis, Rules: membership.Rules{MinMembers: 4}, ActiveFrom: ActiveFrom(epochK)}
	if n.exec, err = execution.NewExecutor(n.db, kv, nil, execution.WithMembership(rules)); err != nil {
		t.Fatal(err)
	}
	n.snaps = NewMemorySnapshots(n.store)
	n.verifier = n.c.verifierFor(n.c.genesis)
	if n.executed == nil {
		n.executed = map[uint64]executedBatch{}
	}
	pos := max(0, n.c.genesis.Position(n.index))
	d, err := New(Config{
		Core: protocol.Config{ID: uint32(pos), N: len(n.c.genesis.Members), Signer: crypto.NewSigner(n.key, testClusterID),
			CheckpointInterval: epochK, WindowSize: 2 * epochK},
		Storage: n.store, Network: epochNet{n}, Executor: n.exec, Snapshots: n.snaps, Verifier: n.verifier,
		Observer: epochObserver{n: n},
		Epochs: &Epochs{ClusterID: testClusterID, Genesis: n.c.genesis, Rules: rules.Rules, Self: n.index,
			PublicKey: n.key.Public().(ed25519.PublicKey), NewVerifier: n.c.verifierFor, Storage: n.store, Network: epochNet{n},
			OnEpoch: func(st EpochStatus) { n.verifier = n.c.verifierFor(st.Config) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.driver = d
	n.down = false
	if err := d.Recover(); err != nil {
		t.Fatal(err)
	}
	if err := d.Process(); err != nil {
		t.Fatal(err)
	}
}

type epochNet struct{ n *epochNode }

func (e epochNet) Send(out protocol.Outbound, frame []byte) {
	d := e.n.driver
	st, _ := d.EpochStatus()
	for pos, m := range st.Config.Members {
		if m.Index == e.n.index || (out.To != protocol.Broadcast && out.To != uint32(pos)) {
			continue
		}
		e.n.c.queue = append(e.n.c.queue, epochMsg{from: e.n.index, to: m.Index, frame: frame})
	}
}

func (e epochNet) Reply(*wire.Reply) {}

func (e epochNet) SendConfigVote(to uint32, vote *wire.Signed) {
	e.n.c.queue = append(e.n.c.queue, epochMsg{from: e.n.index, to: to, vote: vote})
}

func (e epochNet) RequestConfig(to uint32, epoch uint64) {
	e.n.c.queue = append(e.n.c.queue, epochMsg{from: e.n.index, to: to, askAfter: epoch + 1})
}

func (e epochNet) SendConfigCertificate(to uint32, cert *wire.ConfigCertificate) {
	e.n.c.queue = append(e.n.c.queue, epochMsg{from: e.n.index, to: to, cert: cert})
}

type epochObserver struct {
	NopObserver
	n *epochNode
}

func (o epochObserver) Executed(b protocol.CommittedBatch) {
	o.n.executed[b.Sequence] = executedBatch{epoch: o.n.driver.Epoch(), digest: b.Digest}
}

// deliver delivers every message in flight.
func (c *epochCluster) deliver() {
	c.t.Helper()
	for steps := 0; len(c.queue) > 0; steps++ {
		if steps > 200000 {
			c.t.Fatal("the cluster does not settle")
		}
		if c.halt != nil && c.halt() {
			return
		}
		m := c.queue[0]
		c.queue = c.queue[1:]
		n := c.nodes[m.to]
		if n == nil || n.down || c.nodes[m.from].down {
			continue
		}
		switch {
		case m.vote != nil:
			_ = n.driver.StepConfigVote(m.vote)
		case m.cert != nil:
			_ = n.driver.StepConfigCertificate(m.cert)
		case m.askAfter > 0:
			n.driver.OldEpochMessage(m.from, m.askAfter-1)
		default:
			c.deliverFrame(n, m)
		}
		if err := n.driver.Process(); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *epochCluster) deliverFrame(n *epochNode, m epochMsg) {
	vm, err := n.verifier.ReplicaFrame(m.frame)
	if errors.Is(err, protocol.ErrWrongEpoch) {
		var rf wire.ReplicaFrame
		var body wire.ReplicaMessage
		if proto.Unmarshal(m.frame, &rf) == nil && proto.Unmarshal(rf.Message.GetPayload(), &body) == nil && body.Epoch < n.driver.Epoch() {
			n.driver.OldEpochMessage(m.from, body.Epoch)
		}
		return
	}
	if err != nil {
		return // a removed node's or a joiner's frame the receiver cannot check
	}
	if req := vm.Body.GetStateRequest(); req != nil {
		n.serve(m.from, req)
		return
	}
	_ = n.driver.Step(vm)
}

// serve answers a state request from n's snapshots, as a runtime does.
func (n *epochNode) serve(to uint32, req *wire.StateRequest) {
	st, _ := n.driver.EpochStatus()
	chunk := statetransfer.Serve(statetransfer.At(n.snaps.Taken, req.Sequence), req, 64)
	payload, err := proto.Marshal(&wire.ReplicaMessage{From: st.Position, Epoch: st.Config.Epoch, Body: &wire.ReplicaMessage_StateChunk{StateChunk: chunk}})
	if err != nil {
		n.c.t.Fatal(err)
	}
	signed := &wire.Signed{Payload: payload, Signature: crypto.NewSigner(n.key, testClusterID).Sign(crypto.DomainReplicaMessage, payload)}
	b, err := protocol.EncodeFrame(signed, nil)
	if err != nil {
		n.c.t.Fatal(err)
	}
	n.c.queue = append(n.c.queue, epochMsg{from: n.index, to: to, frame: b})
}

func (c *epochCluster) tick(times int) {
	for range times {
		for _, n := range c.nodes {
			if n.down {
				continue
			}
			n.driver.Tick()
			if err := n.driver.Process(); err != nil {
				c.t.Fatal(err)
			}
		}
		c.deliver()
	}
}

// submit sends a client request to every node (as a client that timed
// out does) and delivers.
func (c *epochCluster) submit(op []byte, change []byte) {
	c.t.Helper()
	c.number++
	c.send(c.number, op, change)
	c.deliver()
}

// send gives request number to every running node, without delivering.
func (c *epochCluster) send(number uint64, op []byte, change []byte) {
	c.t.Helper()
	req := &wire.Request{ClientId: c.client.Public().(ed25519.PublicKey), RequestNumber: number, Operation: op, ConfigChange: change}
	payload, _ := proto.Marshal(req)
	signed := &wire.Signed{Payload: payload, Signature: crypto.NewSigner(c.client, testClusterID).Sign(crypto.DomainClientRequest, payload)}
	for _, n := range c.nodes {
		if n.down {
			continue
		}
		cr, err := n.verifier.ClientRequest(signed)
		if err != nil {
			c.t.Fatal(err)
		}
		_ = n.driver.Submit(cr)
		if err := n.driver.Process(); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *epochCluster) put(key string) { c.submit(execution.EncodePut([]byte(key), []byte("v")), nil) }

// change signs ch with the admin key and submits it.
func (c *epochCluster) change(ch membership.Change) { c.submit(nil, c.signChange(ch)) }

func (c *epochCluster) signChange(ch membership.Change) []byte {
	sc := membership.SignedChange{Change: ch.Encode()}
	sc.Signatures = append(sc.Signatures, membership.Sign(testClusterID, sc.Change, c.admin))
	return sc.Encode()
}

func (c *epochCluster) addChange(epoch uint64, index uint32) membership.Change {
	return membership.Change{Epoch: epoch, Kind: membership.AddReplica, Member: membership.Member{
		Index: index, PublicKey: c.nodes[index].key.Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 9000+index)}}
}

// settle ticks until every running node is in epoch and has executed at
// least seq.
func (c *epochCluster) settle(epoch, seq uint64, members ...uint32) {
	c.t.Helper()
	for range 3000 {
		done := true
		for _, i := range members {
			n := c.nodes[i]
			if n.driver.Epoch() != epoch || n.exec.LastExecuted() < seq {
				done = false
			}
		}
		if done {
			return
		}
		c.tick(1)
	}
	for _, i := range members {
		n := c.nodes[i]
		c.t.Logf("node %d: epoch %d executed %d status %+v", i, n.driver.Epoch(), n.exec.LastExecuted(), n.driver.Status())
	}
	c.t.Fatalf("nodes %v did not reach epoch %d and sequence %d", members, epoch, seq)
}

// settleIdle ticks until every member is in epoch, has executed at least
// seq and the same sequence as the others, with no request pending, and
// returns that sequence.
func (c *epochCluster) settleIdle(epoch, seq uint64, members ...uint32) uint64 {
	c.t.Helper()
	for range 3000 {
		at, idle := c.nodes[members[0]].exec.LastExecuted(), true
		for _, i := range members {
			n := c.nodes[i]
			if n.driver.Epoch() != epoch || n.exec.LastExecuted() != at || n.driver.Status().PendingRequests > 0 {
				idle = false
			}
		}
		if idle && at >= seq {
			return at
		}
		c.tick(1)
	}
	c.settle(epoch, seq, members...) // reports where they are
	c.t.Fatalf("nodes %v did not settle with no request pending", members)
	return 0
}

// assertAgreement checks that no two nodes executed different batches at
// one sequence, that nothing executed in an epoch above that epoch's end,
// and that nodes at the same sequence have the same state.
func (c *epochCluster) assertAgreement() {
	c.t.Helper()
	for i, a := range c.nodes {
		for j, b := range c.nodes {
			if i >= j {
				continue
			}
			for seq, x := range a.executed {
				if y, ok := b.executed[seq]; ok && x.digest != y.digest {
					c.t.Fatalf("nodes %d and %d executed different batches at %d", i, j, seq)
				}
			}
			if a.exec.LastExecuted() == b.exec.LastExecuted() && a.exec.StateDigest() != b.exec.StateDigest() {
				c.t.Fatalf("nodes %d and %d differ in state at %d", i, j, a.exec.LastExecuted())
			}
		}
		for _, cert := range a.driver.ConfigHistory().Certificates {
			for seq, x := range a.executed {
				if seq >= cert.Sequence && x.epoch < cert.Config.Epoch {
					c.t.Fatalf("node %d executed %d in epoch %d, at or above epoch %d's start %d", i, seq, x.epoch, cert.Config.Epoch, cert.Sequence)
				}
			}
		}
	}
}

func TestEpochSwitchAddsAJoinerAtTheStableCheckpoint(t *testing.T) {
	c := newEpochCluster(t, 4, 1)
	if st, _ := c.nodes[4].driver.EpochStatus(); st.Member {
		t.Fatal("the spare starts as a member")
	}
	c.put("a")
	c.change(c.addChange(0, 4))
	c.put("b")
	c.settle(1, 2, 0, 1, 2, 3, 4)
	for _, n := range c.nodes {
		st, _ := n.driver.EpochStatus()
		if !st.Member || len(st.Config.Members) != 5 || st.Base != 2 {
			t.Fatalf("node %d: %+v", n.index, st)
		}
	}
	for i := range 4 {
		c.put(fmt.Sprintf("k%d", i))
	}
	c.settle(1, 6, 0, 1, 2, 3, 4)
	c.assertAgreement()
	if c.nodes[4].exec.StateDigest() != c.nodes[0].exec.StateDigest() {
		t.Fatal("the joiner's state differs")
	}
	if len(c.nodes[4].driver.ConfigHistory().Certificates) != 1 {
		t.Fatal("the joiner holds no certificate")
	}
}

func TestEpochRemovedMemberStopsAndOthersContinue(t *testing.T) {
	c := newEpochCluster(t, 5, 0)
	c.put("a")
	c.change(membership.Change{Epoch: 0, Kind: membership.RemoveReplica, Member: membership.Member{Index: 2}})
	c.settle(1, 2, 0, 1, 3, 4)
	if st, _ := c.nodes[2].driver.EpochStatus(); st.Member {
		t.Fatalf("removed node still a member: %+v", st)
	}
	for i := range 4 {
		c.put(fmt.Sprintf("k%d", i))
	}
	c.settle(1, 6, 0, 1, 3, 4)
	c.assertAgreement()
	if got := c.nodes[2].exec.LastExecuted(); got > 2 {
		t.Fatalf("removed node executed up to %d", got)
	}
}

// TestEpochCrashAtEachPoint restarts a member at each point of a switch:
// after the change executed (before the checkpoint at the end is stable),
// after it voted, and after the switch; each recovers into the right
// epoch. Node 2 is down throughout, so the switch needs the restarted
// node's vote; it comes back last and catches up as a lagging member.
// The primary pipelines a put behind the change, so the log holds
// old-epoch entries above the end.
func TestEpochCrashAtEachPoint(t *testing.T) {
	for _, point := range []string{"executed", "voted", "switched"} {
		t.Run(point, func(t *testing.T) {
			c := newEpochCluster(t, 4, 1)
			victim := c.nodes[3]
			c.nodes[2].down = true
			c.put("a") // sequence 1; the change executes at 2 = the end
			crashAt := func() bool {
				switch point {
				case "executed":
					return victim.exec.Membership().Current.Epoch == 1
				case "voted":
					return victim.driver.ep.ownVote != nil
				default:
					return victim.driver.Epoch() == 1
				}
			}
			c.halt = crashAt
			c.send(2, nil, c.signChange(c.addChange(0, 4)))
			c.send(3, execution.EncodePut([]byte("b"), []byte("v")), nil)
			c.number = 3
			crashed := false
			for range 200 {
				c.deliver()
				if crashAt() {
					crashed = true
					break
				}
				c.tick(1)
			}
			c.halt = nil
			if !crashed {
				t.Fatalf("never reached %s", point)
			}
			victim.down = true
			c.deliver() // what was in flight to or from it is lost
			victim.start()
			c.settle(1, 2, 0, 1, 3, 4)
			for i := range 4 {
				c.put(fmt.Sprintf("k%d", i))
			}
			// The restarted victim sends no PREPARE in the view it
			// restored for the next sequences (within the span above its
			// restored base); with node 2 down that view cannot prepare
			// them, and the puts wait for a view change, in fewer batches.
			seq := c.settleIdle(1, 3, 0, 1, 3, 4)
			for _, i := range []uint32{0, 1, 3, 4} {
				kv, err := execution.NewKV(c.nodes[i].db.LevelDB())
				if err != nil {
					t.Fatal(err)
				}
				for k := range 4 {
					if _, found := kv.Get([]byte(fmt.Sprintf("k%d", k))); !found {
						t.Fatalf("node %d: put k%d not executed by sequence %d", i, k, seq)
					}
				}
			}
			c.nodes[2].start()
			c.put("late")
			c.settle(1, seq+1, 0, 1, 2, 3, 4)
			c.assertAgreement()
		})
	}
}

func TestEpochOldBatchAboveTheEndIsNeverExecuted(t *testing.T) {
	c := newEpochCluster(t, 4, 1)
	c.put("a") // 1
	// The change (2, the end of epoch 0) and a put the primary pipelines
	// behind it (3, above the end) commit in epoch 0.
	c.send(2, nil, c.signChange(c.addChange(0, 4)))
	c.send(3, execution.EncodePut([]byte("b"), []byte("v")), nil)
	c.number = 3
	c.deliver()
	c.settle(1, 2, 0, 1, 2, 3, 4)
	discarded := uint64(0)
	for _, n := range c.nodes {
		discarded += n.driver.DiscardedBeyondEnd()
	}
	if discarded == 0 {
		t.Fatal("no old-epoch batch above the end was committed: the test does not test anything")
	}
	c.assertAgreement()
	// The client sends the put again: it executes once, in epoch 1.
	c.send(3, execution.EncodePut([]byte("b"), []byte("v")), nil)
	c.deliver()
	c.settle(1, 3, 0, 1, 2, 3, 4)
	c.assertAgreement()
	for _, n := range c.nodes {
		if e := n.executed[3]; e.epoch != 1 {
			t.Fatalf("node %d executed 3 in epoch %d", n.index, e.epoch)
		}
	}
}

// TestEpochRestartKeepsTheViewOfTheEpoch restarts a member of epoch 1
// after a view change in that epoch: it recovers in the view it had
// entered, not in view 0 (it once did: starting the stored epoch stored
// view 0 again, so the restarted replica went back to a view it had left
// and restored its log of that view; sim --reconfigure seed 46).
func TestEpochRestartKeepsTheViewOfTheEpoch(t *testing.T) {
	c := newEpochCluster(t, 4, 1)
	c.put("a")
	c.change(c.addChange(0, 4))
	c.settle(1, 2, 0, 1, 2, 3, 4)
	// Epoch 1's view 0 is led by position (0+1) mod 5, member 1: with it
	// down, the next request needs a view change.
	if p := protocol.PrimaryIn(1, 0, 5); p != 1 {
		t.Fatalf("primary of view 0 in epoch 1 is %d", p)
	}
	c.nodes[1].down = true
	c.put("b")
	c.settle(1, 3, 0, 2, 3, 4)
	victim := c.nodes[3]
	before := victim.driver.Status().View
	if before == 0 {
		t.Fatal("no view change in epoch 1")
	}
	victim.down = true
	c.deliver()
	victim.start()
	if got := victim.driver.Status().View; got != before {
		t.Fatalf("restarted in view %d, had entered view %d", got, before)
	}
	if view, _, _, err := victim.store.LoadViewState(); err != nil || view != before {
		t.Fatalf("stored view %d (err %v) after the restart, want %d", view, err, before)
	}
	c.put("c")
	c.settle(1, 4, 0, 2, 3, 4)
	c.assertAgreement()
}
