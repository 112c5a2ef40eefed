package sim

import (
	"container/heap"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

const clusterID = "pbftnode-sim"

type eventKind byte

const (
	evReplica eventKind = iota // a replica frame to a host
	evRequest                  // a client request to a host
	evReply                    // a reply to a client
)

// event is something the network delivers at tick at. Events of one tick
// are delivered in the order of their random key: the network reorders.
type event struct {
	at    int64
	order uint64
	id    uint64
	kind  eventKind
	from  uint32 // sending replica (evReplica, evReply)
	to    *host  // evReplica, evRequest
	epoch uint64 // to's incarnation when sent
	frame []byte
	// client is the receiving (evReply) or sending (evRequest) client.
	client int
	reply  *wire.Reply
	// note describes the message for Config.Trace (empty without one).
	note string
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.order != b.order {
		return a.order < b.order
	}
	return a.id < b.id
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
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

	now     int64
	steps   uint64
	queue   eventQueue
	eventID uint64

	keys     []ed25519.PrivateKey
	verifier *protocol.MessageVerifier
	vcache   map[[32]byte]verified
	rcache   map[[32]byte]verifiedRequest

	// hosts are all simulated replica copies; byID[i] those of replica i
	// (two for a Twins replica).
	hosts   []*host
	byID    [][]*host
	clients []*client
	sched   *schedule
	check   *checker

	res  Result
	stop bool
}

func (w *world) push(e *event) {
	w.eventID++
	e.id = w.eventID
	e.order = w.rng.Uint64()
	w.trace("push", e)
	heap.Push(&w.queue, e)
}

// delay returns how many ticks a message takes, and whether it is lost.
// copies > 1 means the network duplicates it.
func (w *world) delay() (ticks int64, dropped bool, copies int) {
	s := w.sched
	if w.calm() {
		return 1 + w.rng.Int64N(MaxNetworkDelay), false, 1
	}
	if w.rng.Float64() < s.dropRate {
		return 0, true, 0
	}
	ticks = 1 + w.rng.Int64N(s.maxDelay)
	if w.rng.Float64() < s.spikeRate {
		ticks += w.rng.Int64N(40)
	}
	copies = 1
	if w.rng.Float64() < s.dupRate {
		copies = 2
	}
	return ticks, false, copies
}

func (w *world) calm() bool { return w.now >= w.sched.calmAt }

// connected reports whether host a's messages reach host b: Twins each
// talk to their own side only, and partitions split replicas.
func (w *world) connected(a, b *host) bool {
	if a.side != nil && !a.side[b.id] {
		return false
	}
	if b.side != nil && !b.side[a.id] {
		return false
	}
	return w.calm() || w.sched.group[a.id] == w.sched.group[b.id]
}

// sendReplica puts what host from sends on the network.
func (w *world) sendReplica(from *host, out protocol.Outbound, extraDelay int64) {
	frame, err := protocol.EncodeFrame(out.Signed, out.Batch)
	if err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d: encode frame: %v", from.id, err))
		return
	}
	note := w.traceNote(frame, true)
	for to := range w.n {
		if uint32(to) == from.id || (out.To != protocol.Broadcast && out.To != uint32(to)) {
			continue
		}
		for _, dst := range w.byID[to] {
			if !w.connected(from, dst) {
				w.res.Dropped++
				continue
			}
			d, dropped, copies := w.delay()
			if dropped {
				w.res.Dropped++
				continue
			}
			for c := range copies {
				w.res.Messages++
				w.push(&event{at: w.now + d + extraDelay + int64(c)*w.rng.Int64N(20), kind: evReplica, from: from.id, to: dst, epoch: dst.epoch, frame: frame, note: note})
			}
		}
	}
}

// sendRequest sends a client's signed request to every copy of replica to.
func (w *world) sendRequest(client int, to uint32, frame []byte) {
	note := w.traceNote(frame, false)
	for _, dst := range w.byID[to] {
		d, dropped, copies := w.delay()
		if dropped {
			w.res.Dropped++
			continue
		}
		for c := range copies {
			w.res.Messages++
			w.push(&event{at: w.now + d + int64(c)*w.rng.Int64N(20), kind: evRequest, client: client, to: dst, epoch: dst.epoch, frame: frame, note: note})
		}
	}
}

// sendReply sends a reply from replica from to a client.
func (w *world) sendReply(from uint32, client int, r *wire.Reply) {
	d, dropped, _ := w.delay()
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
	w.push(&event{at: w.now + d, kind: evReply, from: from, client: client, reply: r, note: note})
}

func (w *world) verifyFrame(frame []byte) verified {
	key := sha256.Sum256(frame)
	if v, ok := w.vcache[key]; ok {
		return v
	}
	vm, err := w.verifier.ReplicaFrame(frame)
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
	case evReplica, evRequest:
		h := e.to
		if h.down || h.epoch != e.epoch {
			w.res.Dropped++
			return
		}
		if e.kind == evRequest {
			v := w.verifyRequest(e.frame)
			if v.err != nil {
				w.res.RejectedFrames++
				return
			}
			h.submit(e.client, v.req)
			return
		}
		v := w.verifyFrame(e.frame)
		if v.err != nil {
			w.res.RejectedFrames++
			return
		}
		h.step(v.vm)
	}
}

// violate records a failed check and stops the run.
func (w *world) violate(kind, detail string) {
	v := Violation{Seed: w.cfg.Seed, Kind: kind, Step: w.steps, Tick: w.now, Detail: detail}
	w.log.Debug("violation", "seed", w.cfg.Seed, "kind", kind, "step", w.steps, "detail", detail)
	w.res.Violations = append(w.res.Violations, v)
	w.stop = true
}

// loop runs the simulation until every client is done, a check fails, or
// the step limit is reached.
func (w *world) loop() {
	for !w.stop {
		for len(w.queue) > 0 && w.queue[0].at <= w.now && !w.stop {
			e := heap.Pop(&w.queue).(*event)
			w.steps++
			w.trace("deliver", e)
			w.deliver(e)
			if w.steps >= w.cfg.MaxSteps {
				break
			}
		}
		if w.stop {
			return
		}
		if w.steps >= w.cfg.MaxSteps {
			w.violate(KindLiveness, fmt.Sprintf("step limit %d reached with %d operations pending", w.cfg.MaxSteps, w.pendingOps()))
			return
		}
		w.sched.apply(w)
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
		done := true
		for _, c := range w.clients {
			c.tick()
			if !c.done() {
				done = false
			}
		}
		if done && w.calm() {
			return
		}
		w.checkLiveness()
		w.now++
	}
}

func (w *world) pendingOps() int {
	n := 0
	for _, c := range w.clients {
		if c.cur != nil {
			n++
		}
	}
	return n
}

// checkLiveness fails the run when an operation is pending past its
// deadline: LivenessBound ticks after the later of calm and its call.
func (w *world) checkLiveness() {
	if !w.calm() {
		return
	}
	bound := LivenessBound(w.n)
	for _, c := range w.clients {
		if c.cur == nil {
			continue
		}
		start := max(w.sched.calmAt, c.cur.call)
		if w.now > start+bound {
			w.violate(KindLiveness, fmt.Sprintf("client %d request %d (%s) issued at tick %d still pending %d ticks after calm (tick %d); bound %d; %s",
				c.idx, c.cur.number, c.cur.input, c.cur.call, w.now-w.sched.calmAt, w.sched.calmAt, bound, w.describeReplicas()))
			return
		}
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
func (w *world) trace(what string, e *event) {
	if w.cfg.Trace == nil {
		return
	}
	to := "-"
	if e.to != nil {
		to = strconv.FormatUint(uint64(e.to.id), 10) + e.to.label()
	}
	fmt.Fprintf(w.cfg.Trace, "%s step=%d tick=%d id=%d at=%d kind=%d from=%d to=%s client=%d %s\n",
		what, w.steps, w.now, e.id, e.at, e.kind, e.from, to, e.client, e.note)
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
