package protocol_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// The interaction environment: N replicas, each the real replica.Driver
// over a replica.MemoryStorage and an executor over an in-memory
// database, on a recording network that queues every frame until a
// command delivers it. Every persist, send, execution, reply and stable
// checkpoint is printed as the driver does it, so a golden script shows
// the order of operations as well as the protocol's messages.

const interactionClusterID = "golden"

// seededKey derives a fixed key from a label and an index.
func seededKey(label string, i int) ed25519.PrivateKey {
	s := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("pbftnode/golden/"+label), uint32(i)))
	return ed25519.NewKeyFromSeed(s[:])
}

// envFrame is one frame on the recording network.
type envFrame struct {
	from, to uint32
	kind     protocol.Kind
	data     []byte
	desc     string
}

// envReplica is one replica of the environment. Its storage and database
// survive a crash; its driver, executor and snapshots do not.
type envReplica struct {
	env    *interactionEnv
	id     uint32
	store  *replica.MemoryStorage
	db     *storage.DB
	exec   *execution.Executor
	driver *replica.Driver
	// snaps keeps the checkpoint snapshots and, once a checkpoint is
	// stable, deletes the log at or below it, as the runtime does.
	snaps *replica.MemorySnapshots
	// byz, when set, rewrites what the replica sends (fault injection).
	byz *byzantine.Filter
}

// interactionEnv is the environment a script drives.
type interactionEnv struct {
	t        *testing.T
	n        int
	core     protocol.Config
	keys     []ed25519.PrivateKey
	clients  []ed25519.PrivateKey
	verifier *protocol.MessageVerifier
	replicas []*envReplica
	queue    []envFrame
	// group[i] is replica i's side of a partition (all 0: none).
	group []int
	// nextRequest[c] is client c's last request number.
	nextRequest map[int]uint64
	// ops names the operation of (client, number), for the exec lines.
	ops map[string]string
	out *strings.Builder
	// indent prefixes the lines of what a delivery caused.
	indent string
	// quiet: the command prints only views, executions, checkpoints,
	// state transfers and restarts (its "quiet" argument).
	quiet bool
	// executedAt is the digest first executed at each sequence, and
	// executedBy[i] the requests replica i executed (over restarts): the
	// environment fails the test when two replicas execute different
	// digests at one sequence or one replica executes a request twice.
	executedAt map[uint64]string
	executedBy []map[string]uint64
	// Configuration epochs (interaction_epoch_test.go; nil verifiers:
	// off): the administrator, the genesis, a verifier per epoch and the
	// configuration frames in flight.
	admin        ed25519.PrivateKey
	genesis      membership.Config
	verifiers    map[uint64]*protocol.MessageVerifier
	configFrames map[int]configFrame
}

const interactionClients = 4

func newInteractionEnv(t *testing.T, n int, core protocol.Config, epochs bool) *interactionEnv {
	env := &interactionEnv{t: t, n: n, core: core, group: make([]int, n),
		nextRequest: map[int]uint64{}, ops: map[string]string{}, out: &strings.Builder{},
		executedAt: map[uint64]string{}}
	pubs := make([]ed25519.PublicKey, n)
	for i := range n {
		env.keys = append(env.keys, seededKey("replica", i))
		pubs[i] = env.keys[i].Public().(ed25519.PublicKey)
	}
	for i := range interactionClients {
		env.clients = append(env.clients, seededKey("client", i))
	}
	env.verifier = protocol.NewMessageVerifier(interactionClusterID, pubs, nil, nil, 0)
	env.verifier.SetWindowSize(core.WindowSize)
	if epochs {
		env.enableEpochs()
	}
	for i := range n {
		db, err := storage.OpenMem(storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		r := &envReplica{env: env, id: uint32(i), store: replica.NewMemoryStorage(), db: db}
		env.replicas = append(env.replicas, r)
		env.executedBy = append(env.executedBy, map[string]uint64{})
		if err := r.start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, r := range env.replicas {
			r.releaseSnapshots()
		}
	})
	return env
}

func (env *interactionEnv) printf(format string, args ...any) {
	if !env.quiet {
		env.out.WriteString(env.indent)
	}
	fmt.Fprintf(env.out, format, args...)
	env.out.WriteByte('\n')
}

// detailf prints a line that a quiet command leaves out: deliveries,
// sends, log appends, replies and dropped inputs.
func (env *interactionEnv) detailf(format string, args ...any) {
	if !env.quiet {
		env.printf(format, args...)
	}
}

// take returns and clears what was printed.
func (env *interactionEnv) take() string {
	s := env.out.String()
	env.out.Reset()
	if s == "" {
		return "ok\n"
	}
	return s
}

// start creates the executor and the driver over the replica's storage,
// recovers and handles the first Ready, as a (re)start of the runtime
// does.
func (r *envReplica) start() error {
	kv, err := execution.NewKV(r.db.LevelDB())
	if err != nil {
		return err
	}
	opts, epochs := r.epochOptions()
	if r.exec, err = execution.NewExecutor(r.db, kv, nil, opts...); err != nil {
		return err
	}
	r.snaps = replica.NewMemorySnapshots(r.store)
	cfg := r.env.core
	cfg.ID, cfg.N = r.id, r.env.n
	cfg.Signer = crypto.NewSigner(r.env.keys[r.id], interactionClusterID)
	d, err := replica.New(replica.Config{
		Core: cfg, Storage: envStorage{r.store, r}, Network: envNetwork{r}, Executor: r.exec,
		Snapshots: r.snaps, Verifier: r.env.verifier, Filter: envFilter{r}, Observer: envObserver{r: r}, Epochs: epochs,
	})
	if err != nil {
		return err
	}
	r.driver = d
	if err := d.Recover(); err != nil {
		return err
	}
	return r.process()
}

func (r *envReplica) process() error {
	if err := r.driver.Process(); err != nil {
		return fmt.Errorf("replica %d: %w", r.id, err)
	}
	return nil
}

// crash drops everything but the storage and the database.
func (r *envReplica) crash() {
	r.releaseSnapshots()
	r.driver, r.exec, r.snaps = nil, nil, nil
}

func (r *envReplica) releaseSnapshots() {
	if r.snaps != nil {
		r.snaps.ReleaseAll()
	}
}

func (r *envReplica) down() bool { return r.driver == nil }

// envStorage prints every durable write before making it.
type envStorage struct {
	*replica.MemoryStorage
	r *envReplica
}

func (s envStorage) SaveViewState(view uint64, active bool) error {
	s.r.env.printf("%d persist view=%d %s", s.r.id, view, activeWord(active))
	return s.MemoryStorage.SaveViewState(view, active)
}

func (s envStorage) AppendLog(entries []storage.LogEntry) error {
	for _, e := range entries {
		s.r.env.detailf("%d persist %s", s.r.id, s.r.env.describeLogEntry(e))
	}
	return s.MemoryStorage.AppendLog(entries)
}

// WriteLog prints the entries a Ready stores without a sync (its
// messages all went before it: see replica.Storage.WriteLog).
func (s envStorage) WriteLog(entries []storage.LogEntry) error {
	for _, e := range entries {
		s.r.env.detailf("%d write %s", s.r.id, s.r.env.describeLogEntry(e))
	}
	return s.MemoryStorage.WriteLog(entries)
}

func (s envStorage) SaveStableCheckpoint(b []byte) error {
	s.r.env.printf("%d persist stable checkpoint %s", s.r.id, describeCertificate(b))
	return s.MemoryStorage.SaveStableCheckpoint(b)
}

func activeWord(active bool) string {
	if active {
		return "active"
	}
	return "changing"
}

// envNetwork queues what the replica sends, one frame per recipient.
type envNetwork struct{ r *envReplica }

func (n envNetwork) Send(out protocol.Outbound, frame []byte) {
	env := n.r.env
	desc := env.describeFrame(frame)
	to := "all"
	if out.To != protocol.Broadcast {
		to = fmt.Sprint(out.To)
	}
	early := ""
	if out.BeforePersist {
		early = " (before persist)"
	}
	own := strings.TrimSuffix(desc, fmt.Sprintf(" from=%d", n.r.id))
	env.detailf("%d send %s to=%s%s", n.r.id, own, to, early)
	for i := range env.n {
		if uint32(i) != n.r.id && (out.To == protocol.Broadcast || out.To == uint32(i)) {
			env.queue = append(env.queue, envFrame{from: n.r.id, to: uint32(i), kind: out.Kind, data: frame, desc: desc})
		}
	}
}

func (n envNetwork) Reply(rep *wire.Reply) {
	if rep.Tentative {
		n.r.env.detailf("%d reply %s v=%d n=%d tentative", n.r.id, n.r.env.requestName(rep.ClientId, rep.RequestNumber), rep.View, rep.Sequence)
		return
	}
	n.r.env.detailf("%d reply %s v=%d", n.r.id, n.r.env.requestName(rep.ClientId, rep.RequestNumber), rep.View)
}

// envFilter passes the replica's messages through its Byzantine
// strategy, when it has one.
type envFilter struct{ r *envReplica }

func (f envFilter) Outbound(out protocol.Outbound) []protocol.Outbound {
	if f.r.byz == nil {
		return []protocol.Outbound{out}
	}
	return f.r.byz.Outbound(out)
}

func (f envFilter) Reply(rep *wire.Reply) bool { return f.r.byz == nil || f.r.byz.Reply(rep) }

// envObserver prints what the driver executes, checkpoints and transfers.
type envObserver struct {
	replica.NopObserver
	r *envReplica
}

func (o envObserver) Executing(b protocol.CommittedBatch) {
	env := o.r.env
	names := make([]string, len(b.Requests))
	for i, req := range b.Requests {
		names[i] = env.requestName(req.ClientId, req.RequestNumber)
		if op, ok := env.ops[names[i]]; ok {
			names[i] += " " + op
		}
	}
	env.printf("%d exec n=%d v=%d d=%s [%s]", o.r.id, b.Sequence, b.View, short(b.Digest[:]), strings.Join(names, ", "))
	env.checkExecution(o.r.id, b)
}

// checkExecution fails the test when replica id executes b at a digest
// another replica did not execute at b.Sequence, or executes one of b's
// requests a second time.
func (env *interactionEnv) checkExecution(id uint32, b protocol.CommittedBatch) {
	d := fmt.Sprintf("%x", b.Digest[:])
	if first, ok := env.executedAt[b.Sequence]; ok && first != d {
		env.printf("VIOLATION: %d executed n=%d at digest %.4s, another replica at %.4s", id, b.Sequence, d, first)
		env.t.Errorf("replica %d executed n=%d at digest %.8s, another replica at %.8s", id, b.Sequence, d, first)
	}
	env.executedAt[b.Sequence] = d
	for _, req := range b.Requests {
		name := env.requestName(req.ClientId, req.RequestNumber)
		if at, ok := env.executedBy[id][name]; ok {
			env.printf("VIOLATION: %d executed %s again at n=%d (first at n=%d)", id, name, b.Sequence, at)
			env.t.Errorf("replica %d executed %s again at n=%d (first at n=%d)", id, name, b.Sequence, at)
		}
		env.executedBy[id][name] = b.Sequence
	}
}

func (o envObserver) Stable(seq uint64) {
	o.r.env.printf("%d stable checkpoint n=%d, log entries kept=%d", o.r.id, seq, o.r.store.LogEntries())
}

func (o envObserver) TransferStarted(seq, executed uint64) {
	o.r.env.printf("%d state transfer to n=%d (executed %d)", o.r.id, seq, executed)
}

func (o envObserver) TransferRejected(seq uint64, peer uint32, reason string, _ error) {
	o.r.env.printf("%d state transfer to n=%d: peer %d %s", o.r.id, seq, peer, reason)
}

func (o envObserver) TransferInstalled(seq uint64, peer uint32, _ int) {
	o.r.env.printf("%d state transfer installed n=%d from %d, state=%s", o.r.id, seq, peer, short(digestOf(o.r.exec)))
}

func digestOf(e *execution.Executor) []byte {
	d := e.StateDigest()
	return d[:]
}

// short is a digest's first two bytes in hex.
func short(d []byte) string {
	if len(d) < 2 {
		return "-"
	}
	return fmt.Sprintf("%x", d[:2])
}

// requestName names a request "c<client>#<number>", or "x#<number>" for a
// client outside the environment (a Byzantine replica's own).
func (env *interactionEnv) requestName(clientID []byte, number uint64) string {
	for i, k := range env.clients {
		if string(k.Public().(ed25519.PublicKey)) == string(clientID) {
			return fmt.Sprintf("c%d#%d", i, number)
		}
	}
	return fmt.Sprintf("x#%d", number)
}

// describeLogEntry prints a stored log entry.
func (env *interactionEnv) describeLogEntry(e storage.LogEntry) string {
	if protocol.Kind(e.Kind) == protocol.KindPreparedCertificate {
		var pc wire.PreparedCertificate
		if err := proto.Unmarshal(e.Signed, &pc); err != nil {
			return fmt.Sprintf("PREPARED-CERT n=%d undecodable: %v", e.Sequence, err)
		}
		return fmt.Sprintf("PREPARED-CERT v=%d n=%d (%d prepares)", e.View, e.Sequence, len(pc.Prepares))
	}
	return env.describeFrame(e.Signed)
}

// describeCertificate prints a stored checkpoint certificate.
func describeCertificate(b []byte) string {
	var wc wire.CheckpointCertificate
	if err := proto.Unmarshal(b, &wc); err != nil || len(wc.Votes) == 0 {
		return "undecodable"
	}
	var from []string
	var seq uint64
	var state []byte
	for _, v := range wc.Votes {
		var m wire.ReplicaMessage
		if proto.Unmarshal(v.Payload, &m) != nil || m.GetCheckpoint() == nil {
			return "undecodable vote"
		}
		from = append(from, fmt.Sprint(m.From))
		seq, state = m.GetCheckpoint().Sequence, m.GetCheckpoint().StateDigest
	}
	return fmt.Sprintf("n=%d state=%s votes=(%s)", seq, short(state), strings.Join(from, ","))
}

// describeFrame prints an encoded replica frame: "<KIND> fields from=<id>".
func (env *interactionEnv) describeFrame(frame []byte) string {
	var f wire.ReplicaFrame
	if err := proto.Unmarshal(frame, &f); err != nil || f.Message == nil {
		return "undecodable frame"
	}
	var m wire.ReplicaMessage
	if err := proto.Unmarshal(f.Message.Payload, &m); err != nil {
		return "undecodable message"
	}
	return env.describeMessage(&m, f.Batch)
}

func (env *interactionEnv) describeMessage(m *wire.ReplicaMessage, batch []*wire.Signed) string {
	switch b := m.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		p := b.PrePrepare
		return fmt.Sprintf("PRE-PREPARE v=%d n=%d d=%s %s from=%d", p.View, p.Sequence, short(p.Digest), env.batchNames(batch), m.From)
	case *wire.ReplicaMessage_Prepare:
		p := b.Prepare
		return fmt.Sprintf("PREPARE v=%d n=%d d=%s from=%d", p.View, p.Sequence, short(p.Digest), m.From)
	case *wire.ReplicaMessage_Commit:
		c := b.Commit
		return fmt.Sprintf("COMMIT v=%d n=%d d=%s from=%d", c.View, c.Sequence, short(c.Digest), m.From)
	case *wire.ReplicaMessage_Checkpoint:
		c := b.Checkpoint
		return fmt.Sprintf("CHECKPOINT n=%d state=%s from=%d", c.Sequence, short(c.StateDigest), m.From)
	case *wire.ReplicaMessage_ViewChange:
		return env.describeViewChange(m.From, b.ViewChange)
	case *wire.ReplicaMessage_NewView:
		return env.describeNewView(m.From, b.NewView)
	case *wire.ReplicaMessage_Fetch:
		return fmt.Sprintf("FETCH from-n=%d v=%d from=%d", b.Fetch.FromSequence, b.Fetch.View, m.From)
	case *wire.ReplicaMessage_CheckpointCertificate:
		return fmt.Sprintf("CHECKPOINT-CERT %s from=%d", describeCertificate(mustMarshal(b.CheckpointCertificate)), m.From)
	case *wire.ReplicaMessage_ForwardedRequest:
		return fmt.Sprintf("FORWARD %s from=%d", env.batchNames([]*wire.Signed{b.ForwardedRequest}), m.From)
	case *wire.ReplicaMessage_StateRequest:
		return fmt.Sprintf("STATE-REQUEST n=%d from=%d", b.StateRequest.Sequence, m.From)
	case *wire.ReplicaMessage_StateChunk:
		c := b.StateChunk
		return fmt.Sprintf("STATE-CHUNK n=%d entries=%d last=%v unavailable=%v from=%d", c.Sequence, len(c.Entries), len(c.NextKey) == 0, c.Unavailable, m.From)
	case *wire.ReplicaMessage_BatchRequest:
		return fmt.Sprintf("BATCH-REQUEST d=%s from=%d", short(b.BatchRequest.Digest), m.From)
	case *wire.ReplicaMessage_BatchReply:
		return fmt.Sprintf("BATCH-REPLY d=%s %s from=%d", short(b.BatchReply.Digest), env.batchNames(b.BatchReply.Requests), m.From)
	case *wire.ReplicaMessage_Suspect:
		return fmt.Sprintf("SUSPECT v=%d from=%d", b.Suspect.NewView, m.From)
	}
	return fmt.Sprintf("unknown message from=%d", m.From)
}

func (env *interactionEnv) describeViewChange(from uint32, vc *wire.ViewChange) string {
	var prepared []string
	for _, pc := range vc.Prepared {
		var m wire.ReplicaMessage
		if pc.PrePrepare == nil || proto.Unmarshal(pc.PrePrepare.Payload, &m) != nil || m.GetPrePrepare() == nil {
			prepared = append(prepared, "?")
			continue
		}
		p := m.GetPrePrepare()
		prepared = append(prepared, fmt.Sprintf("n=%d v=%d d=%s", p.Sequence, p.View, short(p.Digest)))
	}
	return fmt.Sprintf("VIEW-CHANGE v=%d stable=%d prepared=[%s] from=%d", vc.NewView, vc.StableSequence, strings.Join(prepared, " "), from)
}

func (env *interactionEnv) describeNewView(from uint32, nv *wire.NewView) string {
	var senders, pps []string
	for _, s := range nv.ViewChanges {
		var m wire.ReplicaMessage
		if proto.Unmarshal(s.Payload, &m) == nil {
			senders = append(senders, fmt.Sprint(m.From))
		}
	}
	for _, s := range nv.PrePrepares {
		var m wire.ReplicaMessage
		if proto.Unmarshal(s.Payload, &m) != nil || m.GetPrePrepare() == nil {
			pps = append(pps, "?")
			continue
		}
		p := m.GetPrePrepare()
		pps = append(pps, fmt.Sprintf("n=%d d=%s", p.Sequence, short(p.Digest)))
	}
	return fmt.Sprintf("NEW-VIEW v=%d view-changes=(%s) pre-prepares=[%s] from=%d", nv.View, strings.Join(senders, ","), strings.Join(pps, " "), from)
}

// batchNames names the requests of a batch: "[c0#1, c1#1]".
func (env *interactionEnv) batchNames(batch []*wire.Signed) string {
	names := make([]string, len(batch))
	for i, s := range batch {
		var req wire.Request
		if proto.Unmarshal(s.Payload, &req) != nil {
			names[i] = "?"
			continue
		}
		names[i] = env.requestName(req.ClientId, req.RequestNumber)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", m, err))
	}
	return b
}

// serveState answers a state request from r's snapshots, as the runtime
// does (the driver leaves state requests to its caller).
func (r *envReplica) serveState(from uint32, req *wire.StateRequest) {
	chunk := statetransfer.Serve(statetransfer.At(r.snaps.Taken, req.Sequence), req, 64)
	body := &wire.ReplicaMessage{From: r.id, Epoch: r.driver.Epoch(), Body: &wire.ReplicaMessage_StateChunk{StateChunk: chunk}}
	payload := mustMarshal(body)
	signed := &wire.Signed{Payload: payload, Signature: crypto.NewSigner(r.env.keys[r.id], interactionClusterID).Sign(crypto.DomainReplicaMessage, payload)}
	frame, err := protocol.EncodeFrame(signed, nil)
	if err != nil {
		r.env.t.Fatal(err)
	}
	envNetwork{r}.Send(protocol.Outbound{To: from, Signed: signed, Kind: protocol.KindStateChunk}, frame)
}
