package raftsim

import (
	"fmt"
	"log/slog"
	"math/rand/v2"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/wire"
)

type eventKind byte

const (
	evRaft         eventKind = iota // an encoded raft message to a replica
	evStateRequest                  // a state request to a replica
	evStateChunk                    // a state chunk to a replica
	evRequest                       // a client request to a replica
	evReply                         // a reply to a client
)

// event is a message the network delivers (see simkit.Queue: events of
// one tick are delivered in a random order, the network reorders).
type event struct {
	kind eventKind
	// from is the sending replica (all but evRequest) and fromEpoch its
	// incarnation when it sent.
	from      *host
	fromEpoch uint64
	// to is the receiving replica (all but evReply) and epoch its
	// incarnation when the event was sent: a restart loses what was in
	// flight to it.
	to    *host
	epoch uint64

	raft     []byte
	stateReq *wire.StateRequest
	chunk    *wire.StateChunk
	// client is the sending (evRequest) or receiving (evReply) client.
	client int
	req    *wire.Request
	reply  *wire.Reply
}

// world is one run: every replica, client and message in flight.
type world struct {
	cfg Config
	n   int
	rng *rand.Rand
	log *slog.Logger

	now   int64
	steps uint64
	queue simkit.Queue[event]

	hosts []*host
	// clients are the simulated clients; work their shared workload
	// state (the same clients, by index).
	clients []*client
	work    simkit.Workload[*wire.Request]
	sched   *schedule
	// reconf is the administrator of a reconfiguration run (nil
	// otherwise); genesis is the number of first members.
	reconf *reconfig
	// joints are the joint configurations seen (joint.go).
	joints  jointWatch
	genesis int
	check   *checker
	tuning  tuning
	// app is the application the replicas run and the clients use.
	app simkit.Application
	// readRatio is the share of operations the clients send read-only
	// (the Raft leader answers them through ReadIndex, refuses those that
	// are not reads, and the clients then order them); readRng draws
	// which, apart from rng so that the seed's schedule stays the same.
	readRatio float64
	readRng   *rand.Rand
	// fresh checks the read-only answers (reads.go).
	fresh freshness
	// leaderTerms are the terms in which a replica was seen leading.
	leaderTerms map[uint64]bool
	// clientsDoneAt is the tick the last client finished (-1 before).
	clientsDoneAt int64

	// active is the replica whose code runs (for panic reports).
	active *host

	res  Result
	stop bool
}

// transmit sends one message, drawing its fate (see
// simkit.Faults.Transmit), and counts it.
func (w *world) transmit(p event) {
	if !w.sched.Transmit(w.rng, w.now, func(at int64) {
		w.res.Messages++
		w.queue.Push(w.rng, at, p)
	}) {
		w.res.Dropped++
	}
}

func (w *world) calm() bool { return w.sched.Calm(w.now) }

// linked reports whether replica a's messages reach replica b.
func (w *world) linked(a, b uint32) bool {
	return w.sched.Linked(w.now, a, b)
}

// sendBetween puts one replica-to-replica event on the network and
// reports whether the transport would have accepted it (the peer is up and
// reachable); a random loss still counts as accepted.
func (w *world) sendBetween(from, to *host, e event) bool {
	if to.down || !w.linked(from.id, to.id) {
		w.res.Dropped++
		return false
	}
	e.from, e.fromEpoch, e.to, e.epoch = from, from.epoch, to, to.epoch
	w.transmit(e)
	return true
}

// sendRaft encodes m, as the transport does, and sends it.
func (w *world) sendRaft(from *host, m *raftpb.Message) bool {
	to := m.GetTo() - 1
	if to >= uint64(w.n) {
		w.violate(KindInternal, fmt.Sprintf("replica %d sends to raft ID %d", from.id, m.GetTo()))
		return false
	}
	b, err := proto.Marshal(m)
	if err != nil {
		w.violate(KindInternal, fmt.Sprintf("replica %d: encode raft message: %v", from.id, err))
		return false
	}
	return w.sendBetween(from, w.hosts[to], event{kind: evRaft, raft: b})
}

// SendRequest (simkit.Network) sends a client's request to replica to.
func (w *world) SendRequest(client int, to uint32, req *wire.Request) {
	dst := w.hosts[to]
	w.transmit(event{kind: evRequest, client: client, to: dst, epoch: dst.epoch, req: req})
}

// sendReply sends a reply from replica from to a client.
func (w *world) sendReply(from *host, client int, r *wire.Reply) {
	d, dropped, _ := w.sched.Delay(w.rng, w.now)
	if dropped {
		w.res.Dropped++
		return
	}
	w.res.Messages++
	w.queue.Push(w.rng, w.now+d, event{kind: evReply, from: from, fromEpoch: from.epoch, client: client, reply: r})
}

// deliver hands one event to its receiver.
func (w *world) deliver(e *event) {
	if e.kind == evReply {
		w.clients[e.client].handleReply(e.from.id, e.reply)
		return
	}
	h := e.to
	w.active = h
	if h.down || h.epoch != e.epoch || (e.from != nil && e.fromEpoch < e.from.wipedEpoch) {
		// Lost with a crashed receiver, or sent by a replica whose data
		// has since been wiped (its old process is gone for good).
		w.res.Dropped++
		return
	}
	switch e.kind {
	case evRaft:
		m := new(raftpb.Message)
		if err := proto.Unmarshal(e.raft, m); err != nil {
			w.violate(KindInternal, fmt.Sprintf("replica %d: decode raft message: %v", h.id, err))
			return
		}
		h.step(e.from.id, m)
	case evStateRequest:
		h.serveState(e.from, e.stateReq)
	case evStateChunk:
		h.handleStateChunk(e.from.id, e.chunk)
	case evRequest:
		h.submit(e.client, e.req)
	}
	if !w.stop {
		h.process()
	}
}

// KindInternal is simkit.KindInternal: the simulator itself failed.
const KindInternal = simkit.KindInternal

// violate records a failed check and stops the run; checks that fail
// after it in the same step (consequences of the first) are not recorded.
func (w *world) violate(kind, detail string) {
	if w.stop {
		return
	}
	w.res.Violations = append(w.res.Violations, simkit.Violated(w.log, w.cfg.Seed, kind, w.steps, w.now, detail))
	w.stop = true
}

// loop runs the simulation until the clients are done and the replicas
// converged, a check fails, or the step limit is reached.
func (w *world) loop() {
	for !w.stop {
		for w.queue.Due(w.now) && !w.stop && w.steps < w.cfg.MaxSteps {
			e := w.queue.Pop()
			w.steps++
			w.deliver(&e.Payload)
		}
		if w.stop {
			return
		}
		if w.steps >= w.cfg.MaxSteps {
			w.violate(simkit.KindLiveness, fmt.Sprintf("step limit %d reached with %d operations pending; %s", w.cfg.MaxSteps, w.pendingOps(), w.describeReplicas()))
			return
		}
		w.sched.apply(w)
		w.reconf.apply(w)
		for _, h := range w.hosts {
			if h.down || w.stop {
				continue
			}
			w.steps++
			w.active = h
			h.tick()
		}
		if w.stop {
			return
		}
		done := w.work.Tick(w.rng, w.now, w.n, w)
		if done && w.clientsDoneAt < 0 {
			w.clientsDoneAt = w.now
		}
		if done && w.calm() && !w.sched.wipePending() && w.reconf.done() && w.confSettled() && w.converged() {
			return
		}
		w.checkLiveness(done)
		w.now++
	}
}
