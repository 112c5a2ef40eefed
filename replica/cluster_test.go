package replica

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// A test cluster of drivers over MemoryStorage, with a network that
// records what each replica does, in the order the driver does it.

const testClusterID = "replica-test"

func testKey(seed string, i int) ed25519.PrivateKey {
	s := sha256.Sum256(binary.BigEndian.AppendUint32([]byte(seed), uint32(i)))
	return ed25519.NewKeyFromSeed(s[:])
}

// step is one thing a replica did, in order.
type step struct {
	what string // ready, view, send, append, apply, reply, snapshot, stable-save, stable
	kind protocol.Kind
	seq  uint64
	// early: a send marked BeforePersist.
	early bool
}

func (s step) String() string {
	return fmt.Sprintf("%s(%s seq=%d early=%v)", s.what, s.kind, s.seq, s.early)
}

type frame struct {
	from, to uint32
	data     []byte
}

type testReplica struct {
	c     *testCluster
	id    uint32
	store *MemoryStorage
	db    *storage.DB
	exec  *execution.Executor
	// rollbackInterval is what the driver gave SetRollbackInterval.
	rollbackInterval uint64
	driver           *Driver
	trace            []step
	// replies are the replies the replica sent, in order.
	replies []*wire.Reply
	// snaps are the checkpoint snapshots it keeps to serve.
	snaps *MemorySnapshots
	// cut: frames to and from it are lost.
	cut bool
	// background: its storage is a BackgroundAppender (backgroundStorage).
	background bool
}

type testCluster struct {
	t        *testing.T
	n        int
	keys     []ed25519.PrivateKey
	verifier *protocol.MessageVerifier
	replicas []*testReplica
	queue    []frame
	client   ed25519.PrivateKey
	// halt, when set, stops deliver (leaving the queue) once it is true.
	halt func() bool
	// askReceipts makes request ask for a receipt (wire.Request.receipt),
	// or only the request numbers it holds when it returns true for them.
	askReceipts func(number uint64) bool
	// tentative makes request accept tentative replies
	// (wire.Request.tentative).
	tentative bool
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, n: n, client: testKey("client", 0)}
	pubs := make([]ed25519.PublicKey, n)
	for i := range n {
		c.keys = append(c.keys, testKey("replica", i))
		pubs[i] = c.keys[i].Public().(ed25519.PublicKey)
	}
	c.verifier = protocol.NewMessageVerifier(testClusterID, pubs, nil, nil, 0)
	c.verifier.SetWindowSize(4)
	for i := range n {
		db, err := storage.OpenMem(storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		r := &testReplica{c: c, id: uint32(i), store: NewMemoryStorage(), db: db}
		c.replicas = append(c.replicas, r)
		r.start()
	}
	return c
}

// start creates the replica's executor and driver over its storage and
// recovers, as a (re)start does.
func (r *testReplica) start() {
	t := r.c.t
	t.Helper()
	kv, err := execution.NewKV(r.db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	if r.exec, err = execution.NewExecutor(r.db, kv, nil); err != nil {
		t.Fatal(err)
	}
	r.snaps = NewMemorySnapshots(r.store)
	var store Storage = recordingStorage{r.store, r}
	if r.background {
		store = backgroundStorage{recordingStorage{r.store, r}}
	}
	d, err := New(Config{
		Core: protocol.Config{ID: r.id, N: r.c.n, Signer: crypto.NewSigner(r.c.keys[r.id], testClusterID),
			CheckpointInterval: 2, WindowSize: 4},
		Receipts: ReceiptsInReplies,
		Storage:  store, Network: recordingNetwork{r}, Executor: recordingExecutor{r.exec, r},
		Snapshots: recordingSnapshots{r}, Verifier: r.c.verifier, Observer: recordingObserver{r: r},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.driver = d
	t.Cleanup(r.snaps.ReleaseAll)
	if err := d.Recover(); err != nil {
		t.Fatal(err)
	}
	if err := d.Process(); err != nil {
		t.Fatal(err)
	}
}

func (r *testReplica) note(s step) { r.trace = append(r.trace, s) }

// recordingExecutor is the replica's executor noting the rollback
// interval the driver sets.
type recordingExecutor struct {
	*execution.Executor
	r *testReplica
}

func (e recordingExecutor) SetRollbackInterval(k uint64) {
	e.r.rollbackInterval = k
	e.Executor.SetRollbackInterval(k)
}

type recordingStorage struct {
	*MemoryStorage
	r *testReplica
}

func (s recordingStorage) SaveViewState(view uint64, active bool) error {
	s.r.note(step{what: "view", seq: view})
	return s.MemoryStorage.SaveViewState(view, active)
}

func (s recordingStorage) AppendLog(entries []storage.LogEntry) error {
	s.r.note(step{what: "append", seq: entries[len(entries)-1].Sequence})
	return s.MemoryStorage.AppendLog(entries)
}

func (s recordingStorage) WriteLog(entries []storage.LogEntry) error {
	s.r.note(step{what: "write", seq: entries[len(entries)-1].Sequence})
	return s.MemoryStorage.WriteLog(entries)
}

func (s recordingStorage) SaveStableCheckpoint(b []byte) error {
	s.r.note(step{what: "stable-save"})
	return s.MemoryStorage.SaveStableCheckpoint(b)
}

// backgroundStorage is a BackgroundAppender that notes when an append
// starts and appends only when waited for: the driver's work in between
// is what would overlap the append on another goroutine.
type backgroundStorage struct{ recordingStorage }

func (s backgroundStorage) StartAppendLog(entries []storage.LogEntry) func() error {
	s.r.note(step{what: "append-start", seq: entries[len(entries)-1].Sequence})
	return func() error { return s.AppendLog(entries) }
}

type recordingNetwork struct{ r *testReplica }

func (n recordingNetwork) Send(out protocol.Outbound, b []byte) {
	n.r.note(step{what: "send", kind: out.Kind, early: out.BeforePersist})
	c := n.r.c
	for to := range c.n {
		if uint32(to) != n.r.id && (out.To == protocol.Broadcast || out.To == uint32(to)) {
			c.queue = append(c.queue, frame{from: n.r.id, to: uint32(to), data: b})
		}
	}
}

func (n recordingNetwork) Reply(r *wire.Reply) {
	n.r.note(step{what: "reply", seq: r.RequestNumber})
	n.r.replies = append(n.r.replies, r)
}

type recordingSnapshots struct{ r *testReplica }

func (s recordingSnapshots) Checkpointed(snap *execution.StateSnapshot) {
	s.r.note(step{what: "snapshot", seq: snap.Sequence()})
	s.r.snaps.Checkpointed(snap)
}

func (s recordingSnapshots) Stable(seq uint64) {
	s.r.note(step{what: "stable", seq: seq})
	s.r.snaps.Stable(seq)
}

type recordingObserver struct {
	NopObserver
	r *testReplica
}

func (o recordingObserver) Ready(*protocol.Ready) { o.r.note(step{what: "ready"}) }

func (o recordingObserver) TransferInstalled(seq uint64, from uint32, _ int) {
	o.r.note(step{what: "installed", seq: seq})
}

func (o recordingObserver) Executing(b protocol.CommittedBatch) {
	o.r.note(step{what: "apply", seq: b.Sequence})
}

// request returns client 0's signed request number, verified.
func (c *testCluster) request(number uint64, key string) protocol.ClientRequest {
	c.t.Helper()
	pub := c.client.Public().(ed25519.PublicKey)
	req := &wire.Request{ClientId: pub, RequestNumber: number, Operation: execution.EncodePut([]byte(key), []byte("v"))}
	req.Receipt = c.askReceipts != nil && c.askReceipts(number)
	req.Tentative = c.tentative
	payload, err := proto.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	signer := crypto.NewSigner(c.client, testClusterID)
	v, err := c.verifier.ClientRequest(&wire.Signed{Payload: payload, Signature: signer.Sign(crypto.DomainClientRequest, payload)})
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// submit gives req to replica i and handles its Ready.
func (c *testCluster) submit(i int, req protocol.ClientRequest) error {
	r := c.replicas[i]
	err := r.driver.Submit(req)
	if perr := r.driver.Process(); perr != nil {
		c.t.Fatal(perr)
	}
	return err
}

// deliver delivers every frame in flight until none is left.
func (c *testCluster) deliver() {
	c.t.Helper()
	for steps := 0; len(c.queue) > 0; steps++ {
		if steps > 100000 {
			c.t.Fatal("the cluster does not settle")
		}
		if c.halt != nil && c.halt() {
			return
		}
		f := c.queue[0]
		c.queue = c.queue[1:]
		r := c.replicas[f.to]
		if r.driver == nil || r.cut || c.replicas[f.from].cut {
			continue
		}
		m, err := c.verifier.ReplicaFrame(f.data)
		if err != nil {
			c.t.Fatalf("frame from %d: %v", f.from, err)
		}
		if req := m.Body.GetStateRequest(); req != nil {
			r.serve(m.Body.From, req)
			continue
		}
		_ = r.driver.Step(m)
		if err := r.driver.Process(); err != nil {
			c.t.Fatal(err)
		}
	}
}

// serve answers a state request from r's snapshots, as a runtime does.
func (r *testReplica) serve(from uint32, req *wire.StateRequest) {
	chunk := statetransfer.Serve(statetransfer.At(r.snaps.Taken, req.Sequence), req, 64)
	payload, err := proto.Marshal(&wire.ReplicaMessage{From: r.id, Body: &wire.ReplicaMessage_StateChunk{StateChunk: chunk}})
	if err != nil {
		r.c.t.Fatal(err)
	}
	signed := &wire.Signed{Payload: payload, Signature: crypto.NewSigner(r.c.keys[r.id], testClusterID).Sign(crypto.DomainReplicaMessage, payload)}
	b, err := protocol.EncodeFrame(signed, nil)
	if err != nil {
		r.c.t.Fatal(err)
	}
	r.c.queue = append(r.c.queue, frame{from: r.id, to: from, data: b})
}

// tick ticks every replica once and delivers everything.
func (c *testCluster) tick() {
	for _, r := range c.replicas {
		r.driver.Tick()
		if err := r.driver.Process(); err != nil {
			c.t.Fatal(err)
		}
	}
	c.deliver()
}
