package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

const clusterID = "pbftnode-sim"

type eventKind byte

const (
	evReplica    eventKind = iota // a replica frame to a host
	evRequest                     // a client request to a host
	evReply                       // a reply to a client
	evConfigVote                  // a configuration vote to a host (reconfig.go)
	evConfigCert                  // a configuration certificate to a host
	evConfigReq                   // a request for configuration certificates
)

// event is a message the network delivers (see simkit.Queue: events of
// one tick are delivered in a random order, the network reorders).
type event struct {
	kind  eventKind
	from  uint32 // sending replica (evReplica, evReply)
	to    *host  // evReplica, evRequest
	epoch uint64 // to's incarnation when sent
	frame []byte
	// client is the receiving (evReply) or sending (evRequest) client.
	client int
	reply  *wire.Reply
	// vote and cert are a configuration vote or certificate.
	vote *wire.Signed
	cert *wire.ConfigCertificate
	// configEpoch is the epoch a certificate request starts after.
	configEpoch uint64
	// note describes the message for Config.Trace (empty without one).
	note string
}

// verified is a cached verification result of one frame.
type verified struct {
	vm  protocol.VerifiedMessage
	err error
}

type verifiedRequest struct {
	req protocol.ClientRequest
	err error
}

// world is one run: every host, client and message in flight.
type world struct {
	cfg  Config
	n, f int
	rng  *rand.Rand
	log  *slog.Logger
	// votes checks that correct replicas never equivocate.
	votes *equivocationChecker

	now   int64
	steps uint64
	queue simkit.Queue[event]

	keys     []ed25519.PrivateKey
	verifier *protocol.MessageVerifier
	vcache   map[[32]byte]verified
	rcache   map[[32]byte]verifiedRequest

	// hosts are all simulated replica copies; byID[i] those of replica i
	// (two for a Twins replica).
	hosts []*host
	byID  [][]*host
	// clients are the simulated clients; work their shared workload
	// state (the same clients, by index).
	clients []*client
	work    simkit.Workload[[]byte]
	sched   *schedule
	check   *checker
	// app is the application the replicas run and the clients use.
	app simkit.Application

	res  Result
	stop bool

	// Reconfiguration (reconfig.go; nil admin: a fixed membership).
	genesis membership.Config
	admin   *adminClient
	// total is the number of replica identities: n, plus the spares.
	total int
}

// push puts p on the network for delivery at tick at.
func (w *world) push(at int64, p event) {
	w.trace("push", w.queue.Push(w.rng, at, p))
}

// transmit sends one message, drawing its fate (see simkit.Faults.Transmit),
// with extraDelay more ticks, and counts it.
func (w *world) transmit(extraDelay int64, p event) {
	if !w.sched.Transmit(w.rng, w.now, func(at int64) {
		w.res.Messages++
		w.push(at+extraDelay, p)
	}) {
		w.res.Dropped++
	}
}

func (w *world) calm() bool { return w.sched.Calm(w.now) }

// connected reports whether host a's messages reach host b: Twins each
// talk to their own side only, and partitions split replicas.
func (w *world) connected(a, b *host) bool {
	if a.side != nil && !a.side[b.id] {
		return false
	}
	if b.side != nil && !b.side[a.id] {
		return false
	}
	return w.sched.Linked(w.now, a.id, b.id)
}

// sendReplica puts what host from sends on the network.
func (w *world) sendReplica(from *host, out protocol.Outbound, extraDelay int64) {
	frame, err := protocol.EncodeFrame(out.Signed, out.Batch)
	if err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d: encode frame: %v", from.id, err))
		return
	}
	note := w.traceNote(frame, true)
	for _, to := range w.destinations(from, out.To) {
		for _, dst := range w.byID[to] {
			if !w.connected(from, dst) {
				w.res.Dropped++
				continue
			}
			w.transmit(extraDelay, event{kind: evReplica, from: from.id, to: dst, epoch: dst.epoch, frame: frame, note: note})
		}
	}
}

// SendRequest (simkit.Network) sends a client's signed request to every copy of replica to.
func (w *world) SendRequest(client int, to uint32, frame []byte) {
	if c := w.clients[client]; c.reading && c.Cur != nil {
		if to == 0 || c.Cur.Attempts == 0 { // once per send or retransmission round
			w.sendRead(c)
		}
		return
	}
	w.sendFrame(client, to, frame)
}

// sendFrame sends a client's request frame to every copy of replica to.
func (w *world) sendFrame(client int, to uint32, frame []byte) {
	note := w.traceNote(frame, false)
	for _, dst := range w.byID[to] {
		w.transmit(0, event{kind: evRequest, client: client, to: dst, epoch: dst.epoch, frame: frame, note: note})
	}
}

// sendReply sends a reply from replica from to a client.
func (w *world) sendReply(from uint32, client int, r *wire.Reply) {
	d, dropped, _ := w.sched.Delay(w.rng, w.now)
	if dropped {
		w.res.Dropped++
		return
	}
	w.res.Messages++
	var note string
	if w.cfg.Trace != nil {
		b, _ := proto.Marshal(r)
		note = w.traceNote(b, false)
	}
	w.push(w.now+d, event{kind: evReply, from: from, client: client, reply: r, note: note})
}

// verifyFrame verifies a frame replica from sent h over their channel,
// which authenticates from's current key as the runtime's sessions do
// (protocol.Frame.Sender).
func (w *world) verifyFrame(h *host, frame []byte, from uint32) verified {
	verifier := w.verifier
	sender := w.keys[from].Public().(ed25519.PublicKey)
	hash := sha256.New()
	hash.Write(frame)
	hash.Write(sender)
	key := [32]byte(hash.Sum(nil))
	if w.admin != nil {
		// Each host checks with its epoch's verifier.
		verifier = h.verifier
		key = sha256.Sum256(binary.BigEndian.AppendUint64(key[:], verifier.Epoch()))
	}
	if v, ok := w.vcache[key]; ok {
		return v
	}
	out := verifier.VerifyFrames([]protocol.Frame{{ReplicaFrame: frame, Sender: sender}})[0]
	vm, err := out.Message, out.Err
	v := verified{vm: vm, err: err}
	w.vcache[key] = v
	return v
}

func (w *world) verifyRequest(frame []byte) verifiedRequest {
	key := sha256.Sum256(frame)
	if v, ok := w.rcache[key]; ok {
		return v
	}
	var signed wire.Signed
	v := verifiedRequest{}
	if err := unmarshal(frame, &signed); err != nil {
		v.err = err
	} else {
		v.req, v.err = w.verifier.ClientRequest(&signed)
	}
	w.rcache[key] = v
	return v
}

// deliver hands one event to its receiver.
func (w *world) deliver(e *event) {
	switch e.kind {
	case evReply:
		w.clients[e.client].handleReply(e.from, e.reply)
		return
	case evReplica, evRequest, evConfigVote, evConfigCert, evConfigReq:
		h := e.to
		if h.down || h.epoch != e.epoch {
			w.res.Dropped++
			return
		}
		if e.kind == evConfigVote || e.kind == evConfigCert || e.kind == evConfigReq {
			w.deliverConfig(e)
			return
		}
		if e.kind == evRequest {
			if req, ok := readOnlyRequest(e.frame); ok {
				h.read(req)
				return
			}
			v := w.verifyRequest(e.frame)
			if v.err != nil {
				w.res.RejectedFrames++
				return
			}
			h.submit(e.client, v.req)
			return
		}
		v := w.verifyFrame(h, e.frame, e.from)
		if v.err != nil {
			if errors.Is(v.err, protocol.ErrBadSignature) && w.correct(e.from) {
				// A correct replica sends only what it signed or checked.
				w.violate(KindBadSignature, fmt.Sprintf("replica %d received a frame from correct replica %d that fails its signature check: %v", h.id, e.from, v.err))
				return
			}
			w.res.RejectedFrames++
			if w.admin != nil && errors.Is(v.err, protocol.ErrWrongEpoch) {
				w.noteOldEpoch(h, e.from, e.frame)
			}
			return
		}
		// The runtime's pre-check (node/pbft's admission), against the
		// core's current state.
		if h.core != nil {
			if err := protocol.AdmitNormalCase(v.vm.Body, h.core.Watermarks()); err != nil {
				w.res.Prechecked++
				return
			}
		}
		h.step(v.vm)
	}
}

// KindInternal is simkit.KindInternal: the simulator itself failed.
const KindInternal = simkit.KindInternal

// violate records a failed check and stops the run.
func (w *world) violate(kind, detail string) {
	w.res.Violations = append(w.res.Violations, simkit.Violated(w.log, w.cfg.Seed, kind, w.steps, w.now, detail))
	w.stop = true
}

// loop runs the simulation until every client is done, a check fails, or
// the step limit is reached.
func (w *world) loop() {
	for !w.stop {
		for w.queue.Due(w.now) && !w.stop {
			e := w.queue.Pop()
			w.steps++
			w.trace("deliver", e)
			w.deliver(&e.Payload)
			if w.steps >= w.cfg.MaxSteps {
				break
			}
		}
		if w.stop {
			return
		}
		if w.steps >= w.cfg.MaxSteps {
			w.violate(simkit.KindLiveness, fmt.Sprintf("step limit %d reached with %d operations pending", w.cfg.MaxSteps, w.pendingOps()))
			return
		}
		w.sched.apply(w)
		w.adminTick()
		w.restartRotated()
		for _, h := range w.hosts {
			if h.down {
				continue
			}
			w.steps++
			h.tick()
			if w.stop {
				return
			}
		}
		done := w.work.Tick(w.rng, w.now, w.n, w)
		if done && w.adminDone() && w.calm() {
			return
		}
		w.checkLiveness()
		w.now++
	}
}

func (w *world) pendingOps() int { return w.work.Pending() }

// checkLiveness fails the run when an operation is pending past its
// deadline: LivenessBound ticks after the later of calm and its call.
func (w *world) checkLiveness() {
	if !w.calm() {
		return
	}
	if d := w.work.Overdue(w.now, w.sched.CalmAt, LivenessBound(w.n)); d != "" {
		w.violate(simkit.KindLiveness, d+"; "+w.describeReplicas())
	}
}

func (w *world) describeReplicas() string {
	s := "replicas:"
	for _, h := range w.hosts {
		if h.down {
			s += fmt.Sprintf(" [%d down]", h.id)
			continue
		}
		st := h.core.Status()
		s += fmt.Sprintf(" [%d%s view %d active %v committed %d executed %d low %d next %d slots %d pending %d client-pending %d transferring %v suspects-sent %d fetches %d retransmissions %d]",
			h.id, h.label(), st.View, st.ViewActive, st.LastCommitted, h.exec.LastExecuted(), st.LowWatermark, st.NextSequence, st.Slots,
			st.PendingRequests, st.ClientPending, st.Transferring, st.SuspectsSent, st.FetchesSent, st.Retransmissions)
		if w.cfg.Verbose {
			s += "\n" + h.core.DescribeLog()
		}
	}
	return s
}

// trace writes one line about e to Config.Trace, if set: what happens
// (push: sent; deliver: handed to its receiver), the step and tick, the
// event and its message (see traceNote). Two runs of one seed must write
// the same trace; the first line that differs is where they diverge.
func (w *world) trace(what string, qe *simkit.Event[event]) {
	if w.cfg.Trace == nil {
		return
	}
	e := &qe.Payload
	to := "-"
	if e.to != nil {
		to = strconv.FormatUint(uint64(e.to.id), 10) + e.to.label()
	}
	fmt.Fprintf(w.cfg.Trace, "%s step=%d tick=%d id=%d at=%d kind=%d from=%d to=%s client=%d %s\n",
		what, w.steps, w.now, qe.ID, qe.At, e.kind, e.from, to, e.client, e.note)
}

// traceNote describes an encoded message for the trace: a hash of its
// bytes and, for a replica frame, the message's type, sender, view and
// sequence. It is empty when the run is not traced.
func (w *world) traceNote(b []byte, replicaFrame bool) string {
	if w.cfg.Trace == nil {
		return ""
	}
	sum := sha256.Sum256(b)
	note := hex.EncodeToString(sum[:8])
	if !replicaFrame {
		return note
	}
	var frame wire.ReplicaFrame
	var m wire.ReplicaMessage
	if proto.Unmarshal(b, &frame) != nil || frame.Message == nil || proto.Unmarshal(frame.Message.Payload, &m) != nil {
		return note + " undecodable"
	}
	msg := m.ProtoReflect()
	body := msg.WhichOneof(msg.Descriptor().Oneofs().ByName("body"))
	if body == nil {
		return note + " empty"
	}
	note += fmt.Sprintf(" %s from=%d", body.Name(), m.From)
	inner := msg.Get(body).Message().Interface()
	if v, ok := inner.(interface{ GetView() uint64 }); ok {
		note += fmt.Sprintf(" view=%d", v.GetView())
	}
	if s, ok := inner.(interface{ GetSequence() uint64 }); ok {
		note += fmt.Sprintf(" seq=%d", s.GetSequence())
	}
	return note
}
