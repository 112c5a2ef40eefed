package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

const testCluster = "test-cluster"

func testKey(seed byte) ed25519.PrivateKey {
	var s [32]byte
	s[0], s[1] = seed, 0xA5
	return ed25519.NewKeyFromSeed(s[:])
}

// cluster drives n protocol cores in memory, delivering every message
// through a MessageVerifier as the runtime does.
type cluster struct {
	t        *testing.T
	replicas []*Replica
	signers  []*crypto.Signer
	verifier *MessageVerifier
	// drop, when set, drops a message from -> to.
	drop func(from, to uint32, kind Kind) bool
	// hold, when set, delays a message (in order with other held ones)
	// until hold returns false for the first held message.
	hold func(m pending) bool
	held []pending
	// afterStep, when set, runs after every delivered message.
	afterStep func()
	// dropFrame, when set, drops a message from -> to given its frame.
	dropFrame func(from, to uint32, kind Kind, frame []byte) bool
	// executed[i] lists the committed batches replica i executed.
	executed [][]CommittedBatch
	// stateHash[i] chains the digests replica i executed (a stand-in state digest).
	stateHash [][32]byte
	queue     []pending
	stepErrs  map[error]int
	// persisted[i] is replica i's protocol log (what its storage holds);
	// stable[i] its stable checkpoint; hashAt[i][s] its state after s.
	persisted [][]LogEntry
	stable    []*checkpoint.Certificate
	hashAt    []map[uint64][32]byte
	// behind[i] is the last state-transfer request of replica i.
	behind []*checkpoint.Certificate
	cfgs   []Config
	// nextBatch is attached to the next message signedBy builds.
	nextBatch []*wire.Signed
	// views[i] is replica i's persisted view, viewActive[i] whether it had
	// entered it.
	views      []uint64
	viewActive []bool
	// outFilter, when set, rewrites (or drops, returning false) what
	// replica from sends to replica to: a Byzantine replica.
	outFilter func(from, to uint32, m Outbound) (Outbound, bool)
	// verified caches what verifiedBy (the verifier when it was filled)
	// accepted, by frame hash (see verify).
	verified   map[[32]byte]VerifiedMessage
	verifiedBy *MessageVerifier
}

// verifiedCacheFrames bounds the cluster's verification cache.
const verifiedCacheFrames = 4096

// verify checks a frame with the cluster's verifier once per distinct
// frame, as the simulator does: a broadcast reaches each replica as the
// same bytes, and the replicas share the verified message (the core never
// modifies one). Only accepted frames are cached; the cache is emptied
// when the verifier changes or it holds verifiedCacheFrames.
func (c *cluster) verify(frame []byte) (VerifiedMessage, error) {
	if c.verifiedBy != c.verifier || len(c.verified) >= verifiedCacheFrames {
		c.verified, c.verifiedBy = make(map[[32]byte]VerifiedMessage), c.verifier
	}
	key := sha256.Sum256(frame)
	if vm, ok := c.verified[key]; ok {
		return vm, nil
	}
	vm, err := c.verifier.ReplicaFrame(frame)
	if err == nil {
		c.verified[key] = vm
	}
	return vm, err
}

// prePrepareFrom builds a pre-prepare signed by from with its batch.
func (c *cluster) prePrepareFrom(from uint32, pp *wire.PrePrepare, batch []*wire.Signed) VerifiedMessage {
	c.nextBatch = batch
	return c.signedBy(from, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: pp}})
}

type pending struct {
	from, to uint32
	kind     Kind
	frame    []byte
}

func newCluster(t *testing.T, n int, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, executed: make([][]CommittedBatch, n), stateHash: make([][32]byte, n), stepErrs: map[error]int{},
		persisted: make([][]LogEntry, n), stable: make([]*checkpoint.Certificate, n), hashAt: make([]map[uint64][32]byte, n),
		behind: make([]*checkpoint.Certificate, n)}
	for i := range c.hashAt {
		c.hashAt[i] = map[uint64][32]byte{}
	}
	pubs := make([]ed25519.PublicKey, n)
	for i := range n {
		key := testKey(byte(i))
		pubs[i] = key.Public().(ed25519.PublicKey)
		c.signers = append(c.signers, crypto.NewSigner(key, testCluster))
	}
	c.verifier = NewMessageVerifier(testCluster, pubs, nil, nil, 0)
	for i := range n {
		cfg := Config{ID: uint32(i), N: n, Signer: c.signers[i]}
		if tweak != nil {
			tweak(&cfg)
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.replicas = append(c.replicas, r)
		c.cfgs = append(c.cfgs, cfg)
	}
	return c
}

// request builds a client request signed by client key seed.
func request(clientSeed byte, number uint64, op string) ClientRequest {
	key := testKey(100 + clientSeed)
	req := &wire.Request{ClientId: key.Public().(ed25519.PublicKey), RequestNumber: number, Operation: []byte(op)}
	payload, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	signer := crypto.NewSigner(key, testCluster)
	return ClientRequest{Signed: &wire.Signed{Payload: payload, Signature: signer.Sign(crypto.DomainClientRequest, payload)}, Request: req}
}

// collect drains every replica's Ready into the network queue and executes
// committed batches.
func (c *cluster) collect() {
	for i, r := range c.replicas {
		for r.HasReady() {
			rd := r.Ready()
			c.persisted[i] = append(c.persisted[i], rd.Persist...)
			if rd.StableCheckpoint != nil {
				c.stable[i] = rd.StableCheckpoint
				kept := c.persisted[i][:0]
				for _, e := range c.persisted[i] {
					if e.Sequence > rd.StableCheckpoint.Sequence {
						kept = append(kept, e)
					}
				}
				c.persisted[i] = kept
			}
			if rd.Behind != nil {
				c.behind[i] = rd.Behind
			}
			if rd.View != nil {
				for len(c.views) < len(c.replicas) {
					c.views = append(c.views, 0)
				}
				c.views[i] = *rd.View
				for len(c.viewActive) < len(c.replicas) {
					c.viewActive = append(c.viewActive, true)
				}
				c.viewActive[i] = rd.ViewActive
			}
			for _, m := range rd.Messages {
				for to := range c.replicas {
					if uint32(to) == uint32(i) || (m.To != Broadcast && m.To != uint32(to)) {
						continue
					}
					out := m
					if c.outFilter != nil {
						var ok bool
						if out, ok = c.outFilter(uint32(i), uint32(to), m); !ok {
							continue
						}
					}
					frame, err := EncodeFrame(out.Signed, out.Batch)
					if err != nil {
						c.t.Fatal(err)
					}
					c.queue = append(c.queue, pending{from: uint32(i), to: uint32(to), kind: out.Kind, frame: frame})
				}
			}
			c.execute(i, rd.Committed)
		}
	}
}

func (c *cluster) execute(i int, batches []CommittedBatch) {
	r := c.replicas[i]
	for _, b := range batches {
		want := uint64(len(c.executed[i])) + 1
		if b.Sequence != want {
			c.t.Fatalf("replica %d executed sequence %d, want %d (out of order)", i, b.Sequence, want)
		}
		c.executed[i] = append(c.executed[i], b)
		h := sha256.New()
		h.Write(c.stateHash[i][:])
		h.Write(b.Digest[:])
		copy(c.stateHash[i][:], h.Sum(nil))
		c.hashAt[i][b.Sequence] = c.stateHash[i]
		if b.Sequence%r.cfg.CheckpointInterval == 0 {
			if err := r.CheckpointExecuted(b.Sequence, c.stateHash[i]); err != nil {
				c.t.Fatalf("replica %d checkpoint: %v", i, err)
			}
		}
	}
}

// run delivers messages until the network is quiet.
func (c *cluster) run() {
	c.collect()
	for steps := 0; len(c.queue) > 0; steps++ {
		if steps > 1_000_000 {
			c.t.Fatal("cluster did not quiesce")
		}
		if len(c.held) > 0 && !c.hold(c.held[0]) {
			c.queue = append(c.held, c.queue...)
			c.held = nil
		}
		m := c.queue[0]
		c.queue = c.queue[1:]
		if c.hold != nil && c.hold(m) {
			c.held = append(c.held, m)
			continue
		}
		if c.drop != nil && c.drop(m.from, m.to, m.kind) {
			continue
		}
		if c.dropFrame != nil && c.dropFrame(m.from, m.to, m.kind, m.frame) {
			continue
		}
		vm, err := c.verify(m.frame)
		if err != nil {
			c.t.Fatalf("own message from %d failed verification: %v", m.from, err)
		}
		if err := c.replicas[m.to].Step(vm); err != nil {
			c.stepErrs[err]++
		}
		c.collect()
		if c.afterStep != nil {
			c.afterStep()
		}
	}
}

// restart replaces replica i by a new one restored from what its storage
// holds, as after a crash.
func (c *cluster) restart(i int) {
	c.t.Helper()
	r, err := New(c.cfgs[i])
	if err != nil {
		c.t.Fatal(err)
	}
	view := uint64(0)
	if i < len(c.views) {
		view = c.views[i]
	}
	rec := Recovered{View: view, Stable: c.stable[i], Executed: uint64(len(c.executed[i]))}
	if i < len(c.viewActive) {
		rec.ViewChanging = !c.viewActive[i]
	}
	for _, e := range c.persisted[i] {
		if e.Certificate != nil {
			pc, err := c.verifier.PreparedCertificate(e.Certificate)
			if err != nil {
				c.t.Fatalf("logged prepared certificate does not verify: %v", err)
			}
			rec.Prepared = append(rec.Prepared, pc)
			continue
		}
		frame, _ := EncodeFrame(e.Signed, e.Batch)
		vm, err := c.verifier.ReplicaFrame(frame)
		if err != nil {
			c.t.Fatalf("logged message does not verify: %v", err)
		}
		rec.Log = append(rec.Log, vm)
	}
	if err := r.Restore(rec); err != nil {
		c.t.Fatal(err)
	}
	c.replicas[i] = r
	// Messages in flight to the crashed replica are lost.
	kept := c.queue[:0]
	for _, m := range c.queue {
		if m.to != uint32(i) {
			kept = append(kept, m)
		}
	}
	c.queue = kept
}

// transferState installs, on replica i, replica from's state at the
// checkpoint replica i asked for, as state transfer does.
func (c *cluster) transferState(i, from int) {
	c.t.Helper()
	cert := c.behind[i]
	if cert == nil {
		c.t.Fatalf("replica %d did not ask for state transfer", i)
	}
	if c.hashAt[from][cert.Sequence] != cert.StateDigest {
		c.t.Fatalf("certificate digest does not match replica %d's state at %d", from, cert.Sequence)
	}
	c.executed[i] = append([]CommittedBatch(nil), c.executed[from][:cert.Sequence]...)
	c.stateHash[i] = cert.StateDigest
	c.hashAt[i][cert.Sequence] = cert.StateDigest
	c.behind[i] = nil
	if err := c.replicas[i].InstallCheckpoint(*cert); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) tick(n int) {
	for range n {
		for _, r := range c.replicas {
			r.Tick()
		}
		c.run()
	}
}

// assertAgreement checks that every pair of replicas executed the same
// batch at every sequence both executed.
func (c *cluster) assertAgreement() {
	c.t.Helper()
	for i := range c.executed {
		for j := i + 1; j < len(c.executed); j++ {
			for s := 0; s < min(len(c.executed[i]), len(c.executed[j])); s++ {
				a, b := c.executed[i][s], c.executed[j][s]
				if a.Digest != b.Digest || !sameRequests(a.Requests, b.Requests) {
					c.t.Fatalf("replicas %d and %d executed different batches at sequence %d", i, j, s+1)
				}
			}
		}
	}
}

// executedRequests returns how often each (client, number) executed on replica i.
func (c *cluster) executedRequests(i int) map[requestKey]int {
	out := map[requestKey]int{}
	for _, b := range c.executed[i] {
		for _, req := range b.Requests {
			out[keyOf(req)]++
		}
	}
	return out
}

// signedBy builds a replica message signed by replica from's key.
func (c *cluster) signedBy(from uint32, body *wire.ReplicaMessage) VerifiedMessage {
	body.From = from
	payload, err := proto.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	signed := &wire.Signed{Payload: payload, Signature: c.signers[from].Sign(crypto.DomainReplicaMessage, payload)}
	frame, _ := EncodeFrame(signed, c.nextBatch)
	c.nextBatch = nil
	vm, err := c.verifier.ReplicaFrame(frame)
	if err != nil {
		c.t.Fatalf("hand-built message does not verify: %v", err)
	}
	return vm
}

// checkpointSeq returns the sequence of a checkpoint frame (0 otherwise).
func (c *cluster) checkpointSeq(frame []byte) uint64 {
	vm, err := c.verifier.ReplicaFrame(frame)
	if err != nil {
		return 0
	}
	return vm.Body.GetCheckpoint().GetSequence()
}

func digestBytes(d crypto.Digest) []byte { return append([]byte(nil), d[:]...) }

func protoMarshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

func (c *cluster) decode(m Outbound) VerifiedMessage {
	c.t.Helper()
	frame, _ := EncodeFrame(m.Signed, m.Batch)
	vm, err := c.verifier.ReplicaFrame(frame)
	if err != nil {
		c.t.Fatal(err)
	}
	return vm
}

func sameRequests(a, b []*wire.Request) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
