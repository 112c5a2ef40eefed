package pbft

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/wire"
)

// input is one verified input for the event loop.
type input struct {
	msg *protocol.VerifiedMessage
	req *protocol.ClientRequest
	// reads are read-only requests from their client's own stream (one
	// frame's, or a ReadBatch's; see acceptRead): answered by Driver.Read,
	// never verified or ordered.
	reads  []*wire.Request
	client peer.ID
	// config is a CONFIG frame, or a note of an old-epoch frame (epochs.go).
	config *configInput
}

// verifyLoop decodes frames and checks signatures off the loop goroutine.
// Each pass takes one frame, or more if more are waiting (up to
// node.MaxVerifyDrain), and verifies them together.
func (n *Node) verifyLoop(ctx context.Context) {
	node.ReceiveLoop(ctx, n.Host, n.verifyArrivals)
}

// verifyArrivals verifies frames together and hands what passes to the
// event loop, in the order the frames came.
func (n *Node) verifyArrivals(ctx context.Context, arrivals []node.Arrival) {
	frames := make([]protocol.Frame, 0, len(arrivals))
	index := make([]int, len(arrivals)) // into frames; -1: dropped undecoded
	for i, a := range arrivals {
		index[i] = -1
		if a.Client {
			if in, ok, handled := n.readBatchInput(a.Frame); handled {
				if ok {
					n.push(ctx, in)
				}
				continue
			}
			signed, reads, ok := n.decodeClientFrame(a.Frame)
			if !ok {
				continue
			}
			if reads != nil {
				n.acceptReadBatch(ctx, a.Frame, reads)
				continue
			}
			if in, ok, dropped := n.acceptRead(a.Frame, signed); ok || dropped {
				if ok {
					n.push(ctx, in)
				}
				continue
			}
			frames = append(frames, protocol.Frame{ClientRequest: signed})
		} else if isConfigFrame(a.Frame.Data) {
			n.acceptConfigFrame(ctx, a.Frame)
			continue
		} else {
			frames = append(frames, protocol.Frame{ReplicaFrame: a.Frame.Data, Sender: senderKey(a.Frame)})
		}
		index[i] = len(frames) - 1
	}
	if len(frames) == 0 {
		return
	}
	verdicts := n.verifier.Load().VerifyFramesAdmitting(frames, n.admission())
	for i, a := range arrivals {
		if index[i] < 0 {
			continue
		}
		v := verdicts[index[i]]
		if a.Client {
			if in, ok := n.acceptClientRequest(a.Frame, v); ok {
				n.push(ctx, in)
			}
			continue
		}
		n.acceptReplicaMessage(ctx, a.Frame, v)
	}
}

// acceptReplicaMessage hands a verified replica frame to where it goes.
func (n *Node) acceptReplicaMessage(ctx context.Context, f p2p.Frame, v protocol.Verified) {
	if errors.Is(v.Err, protocol.ErrWrongEpoch) {
		if in, ok := n.noteWrongEpoch(f); ok {
			n.push(ctx, input{config: &in})
		}
		n.drop("wrong_epoch", "from", f.FromIndex)
		return
	}
	if v.Err != nil {
		n.countSignature(v.Err)
		node.Refused(n.Host, n.metrics, n.log, f, v.Err)
		n.drop(reasonOf(v.Err), "from", f.FromIndex, "err", v.Err)
		return
	}
	m := v.Message
	n.metrics.Ops.Verified.Inc()
	n.metrics.CountReceivedBytes(kindOf(m.Body).String(), len(f.Data))
	if req := m.Body.GetStateRequest(); req != nil {
		select {
		case n.stateRequests <- node.StateRequest{From: n.replyTarget(f, m.Body.From), Req: req}:
		default:
			n.drop("state_requests_full")
		}
		return
	}
	n.push(ctx, input{msg: &m})
}

// acceptConfigFrame decodes a CONFIG frame from a replica and hands it to
// the event loop (the driver verifies what it carries).
func (n *Node) acceptConfigFrame(ctx context.Context, f p2p.Frame) {
	if !n.epochs || f.FromIndex < 0 {
		n.drop("malformed", "from", f.FromIndex, "err", "configuration frame without epochs")
		return
	}
	in, err := decodeConfigFrame(uint32(f.FromIndex), f.Data)
	if err != nil {
		n.drop("malformed", "from", f.FromIndex, "err", err)
		return
	}
	n.push(ctx, input{config: &in})
}

// verifyClientFrame decodes and verifies one client frame on its own.
func (n *Node) verifyClientFrame(f p2p.Frame) (input, bool) {
	if in, ok, handled := n.readBatchInput(f); handled {
		return in, ok
	}
	signed, reads, ok := n.decodeClientFrame(f)
	if !ok {
		return input{}, false
	}
	if reads != nil {
		reqs, reason := node.ReadBatchRequests(reads, string(f.From))
		return n.readsInput(f, reqs, reason)
	}
	return n.acceptClientRequest(f, n.verifier.Load().VerifyFrames([]protocol.Frame{{ClientRequest: signed}})[0])
}

// decodeClientFrame decodes a client frame down to its signed request, or
// its batch of reads.
func (n *Node) decodeClientFrame(f p2p.Frame) (*wire.Signed, *wire.ReadBatch, bool) {
	var frame wire.ClientFrame
	err := proto.Unmarshal(f.Data, &frame)
	if err == nil && frame.GetRequest() == nil && frame.GetReads() == nil {
		err = errors.New("client frame without a request")
	}
	if err != nil {
		n.drop("malformed", "client", f.From, "err", err)
		return nil, nil, false
	}
	return frame.GetRequest(), frame.GetReads(), true
}

// acceptClientRequest turns a verified client request into an input.
func (n *Node) acceptClientRequest(f p2p.Frame, v protocol.Verified) (input, bool) {
	if v.Err != nil {
		n.countSignature(v.Err)
		if n.Host != nil {
			node.Refused(n.Host, n.metrics, n.log, f, v.Err)
		}
		n.drop(reasonOf(v.Err), "client", f.From, "err", v.Err)
		return input{}, false
	}
	req := v.Request
	n.metrics.Ops.Verified.Inc()
	if !node.SentByItsClient(f, req.Request) {
		n.drop("client_mismatch", "client", f.From)
		return input{}, false
	}
	return input{req: &req, client: f.From}, true
}

func (n *Node) push(ctx context.Context, in input) {
	if !node.Push(ctx, n.inbox, in) {
		n.drop("inbox_full")
	}
}

// countSignature counts a verification failure that was a bad signature.
func (n *Node) countSignature(err error) {
	if errors.Is(err, protocol.ErrBadSignature) {
		n.metrics.Ops.Rejected.Inc()
	}
}

func (n *Node) drop(reason string, args ...any) { n.metrics.Drop(n.log, reason, args...) }

// reasonOf maps an error of the core or the driver to a metric label.
func reasonOf(err error) string {
	if reason := node.ReasonOf(err); reason != "other" {
		return reason
	}
	switch {
	case errors.Is(err, replica.ErrRequestTooOld):
		return "request_too_old"
	case errors.Is(err, replica.ErrUnexpectedStateChunk):
		return "unexpected_state_chunk"
	case errors.Is(err, replica.ErrReadsFull):
		return "reads_full"
	}
	return "other"
}

// eventLoop owns the replica driver (the core and the executor): it
// feeds it ticks and inputs, and after each tick or burst of inputs has it
// handle the core's Ready.
func (n *Node) eventLoop(ctx context.Context) {
	node.EventLoop[input]{
		TickInterval: n.cfg.TickInterval,
		Inbox:        n.inbox,
		Tick:         n.driver.Tick,
		Handle:       n.handle,
		Process:      n.driver.Process,
		Processed: func() {
			n.flushReadReplies()
			n.publishStatus()
		},
		Metrics: n.metrics,
		Log:     n.log,
	}.Run(ctx)
}

// handle hands one verified input to the driver and counts the outcome.
func (n *Node) handle(in input) {
	if in.config != nil {
		n.stepConfig(*in.config)
		return
	}
	if in.reads != nil {
		for _, r := range in.reads {
			if !n.answerConfigQuery(r) {
				n.handleRead(r)
			}
		}
		return
	}
	if in.msg != nil {
		chunk := in.msg.Body.GetStateChunk() != nil
		if err := n.driver.Step(*in.msg); err != nil {
			n.drop(reasonOf(err), "err", err)
			return
		}
		if !chunk {
			n.metrics.CountReceived(kindOf(in.msg.Body).String())
		}
		return
	}
	if err := n.driver.Submit(*in.req); err != nil {
		n.drop(reasonOf(err), "err", err)
	}
}

func (n *Node) publishStatus() {
	ep := n.epochStatus()
	n.syncHostMembers()
	if d := n.driver.DiscardedBeyondEnd(); d > n.epochMetrics.discardedSeen {
		n.epochMetrics.discarded.Add(float64(d - n.epochMetrics.discardedSeen))
		n.epochMetrics.discardedSeen = d
	}
	n.tentative.publish(n.driver.TentativeCounts())
	st := n.driver.Status()
	prev := n.lastCore
	if core := n.driver.Core(); core != n.statusCore {
		// A new epoch's core: its counters start from 0.
		if n.statusCore != nil {
			n.earlierCores.add(prev)
		}
		n.statusCore, prev = core, protocol.Status{}
	}
	n.lastCore = st
	total := n.earlierCores
	total.add(st)
	n.metrics.ViewChangeAttempts.Add(float64(st.ViewChangesStarted - prev.ViewChangesStarted))
	n.metrics.ViewChanges.Add(float64(st.ViewChangesCompleted - prev.ViewChangesCompleted))
	if !st.ViewActive && n.viewChangeStarted.IsZero() {
		n.viewChangeStarted = time.Now()
		n.log.Info("changing view", "to", st.View)
	}
	if st.ViewActive && !n.viewChangeStarted.IsZero() {
		n.metrics.ViewChangeSeconds.Observe(time.Since(n.viewChangeStarted).Seconds())
		n.log.Info("entered view", "view", st.View, "took", time.Since(n.viewChangeStarted).Round(time.Millisecond))
		n.viewChangeStarted = time.Time{}
	}
	n.metrics.View.Set(float64(st.View))
	// Recovery and state transfer move these too, not only execute and
	// persistStable: a restarted or transferred replica must not report 0.
	n.metrics.ExecutedSequence.Set(float64(n.executor.LastExecuted()))
	n.metrics.StableCheckpoint.Set(float64(st.LowWatermark))
	n.metrics.Retransmissions.Set(float64(total.retransmissions))
	n.metrics.SlowPrimary.Set(float64(total.slowPrimarySuspects))
	n.metrics.ServeLimited.Set(float64(total.serveLimited))
	n.metrics.PreparesWithheld.Set(float64(total.preparesWithheld))
	n.metrics.CommitsByChannel.Set(float64(total.commitsByChannel))
	n.metrics.RelayRefused.Set(float64(total.relayRefused))
	n.metrics.SetChanging(!st.ViewActive, n.driver.Transferring())
	wm := n.driver.Core().Watermarks()
	n.watermarks.Store(&wm)
	n.status.Store(&node.Status{
		Index:            n.cfg.Index,
		View:             st.View,
		ExecutedSequence: n.executor.LastExecuted(),
		StableCheckpoint: st.LowWatermark,
		StateDigest:      n.stateDigest(st.Transferring),
		RetainedSlots:    st.Slots,
		BufferedAhead:    st.Buffered,
		PendingRequests:  st.PendingRequests,
		Transferring:     st.Transferring,
		ViewActive:       st.ViewActive,
		ViewChanges:      st.ViewChangesCompleted,
		Leader:           n.leader(st.View),
		Epoch:            ep.Config.Epoch,
		Members:          ep.Config.Indices(),
	})
}

// coreCounters are the cores' counters that the metrics publish as running
// totals over the replica's life, across configuration epochs.
type coreCounters struct {
	retransmissions, slowPrimarySuspects, serveLimited uint64
	preparesWithheld, commitsByChannel, relayRefused   uint64
}

// add adds a core's counters from its status.
func (c *coreCounters) add(st protocol.Status) {
	c.retransmissions += st.Retransmissions
	c.slowPrimarySuspects += st.SlowPrimarySuspects
	c.serveLimited += st.ServeLimited
	c.preparesWithheld += st.PreparesWithheld
	c.commitsByChannel += st.CommitsByChannel
	c.relayRefused += st.RelayRefused
}

func kindOf(m *wire.ReplicaMessage) protocol.Kind {
	switch m.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		return protocol.KindPrePrepare
	case *wire.ReplicaMessage_Prepare:
		return protocol.KindPrepare
	case *wire.ReplicaMessage_Commit:
		return protocol.KindCommit
	case *wire.ReplicaMessage_Checkpoint:
		return protocol.KindCheckpoint
	case *wire.ReplicaMessage_ForwardedRequest:
		return protocol.KindForward
	case *wire.ReplicaMessage_ViewChange:
		return protocol.KindViewChange
	case *wire.ReplicaMessage_NewView:
		return protocol.KindNewView
	case *wire.ReplicaMessage_Suspect:
		return protocol.KindSuspect
	case *wire.ReplicaMessage_Fetch:
		return protocol.KindFetch
	case *wire.ReplicaMessage_CheckpointCertificate:
		return protocol.KindCheckpointCertificate
	case *wire.ReplicaMessage_BatchRequest:
		return protocol.KindBatchRequest
	case *wire.ReplicaMessage_BatchReply:
		return protocol.KindBatchReply
	case *wire.ReplicaMessage_StateRequest:
		return protocol.KindStateRequest
	case *wire.ReplicaMessage_StateChunk:
		return protocol.KindStateChunk
	}
	return 0
}

// admission returns the pre-check for the frames verified now: it drops
// the normal-case messages the core, in its last published state or any
// later one, would drop or keep unused (protocol.AdmitNormalCase; nil
// before the first publication).
func (n *Node) admission() protocol.Admission {
	w := n.watermarks.Load()
	if w == nil {
		return nil
	}
	return func(body *wire.ReplicaMessage) error { return protocol.AdmitNormalCase(body, *w) }
}

// senderKey is the public key of the replica whose authenticated session
// delivered f (protocol.Frame.Sender), or nil for a client's session.
func senderKey(f p2p.Frame) []byte {
	if f.FromIndex < 0 {
		return nil
	}
	return f.FromKey
}

// stateDigest is the executor's state digest for publishStatus, computed
// again only when the executed sequence moved or a state transfer is (or
// was) under way: the digest changes only with an execution or a restore,
// and the loop publishes its status many times per executed batch.
func (n *Node) stateDigest(transferring bool) [32]byte {
	seq := n.executor.LastExecuted()
	if c := &n.digestAt; !c.valid || c.seq != seq || transferring {
		c.seq, c.digest, c.valid = seq, n.executor.StateDigest(), !transferring
	}
	return n.digestAt.digest
}
