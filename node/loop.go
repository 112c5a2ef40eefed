package node

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/p2p/identity"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/wire"
)

// input is one verified input for the event loop.
type input struct {
	msg    *protocol.VerifiedMessage
	req    *protocol.ClientRequest
	client peer.ID
}

// maxBurst bounds how many inputs the loop takes before handling Ready,
// so one fsync covers a burst without starving the network.
const maxBurst = 256

// maxVerifyDrain bounds how many frames one verification worker takes at
// once; it checks all their signatures in one batch verification. It takes
// only frames that are already waiting: it never waits for more, so
// batching adds no latency, and batches grow with the load.
const maxVerifyDrain = 64

// arrival is one frame a verification worker took: from a replica, or
// from a client.
type arrival struct {
	frame  p2p.Frame
	client bool
}

// verifyLoop decodes frames and checks signatures off the loop goroutine.
// Each pass takes one frame, or more if more are waiting (up to
// maxVerifyDrain), and verifies them together.
func (n *Node) verifyLoop(ctx context.Context) {
	defer n.wg.Done()
	verifyLoop(ctx, n.host, n.verifyArrivals)
}

// verifyLoop hands verify every batch of frames the host schedules (up
// to maxVerifyDrain, only frames already waiting) until ctx ends or the
// host closes.
func verifyLoop(ctx context.Context, host *p2p.Host, verify func(context.Context, []arrival)) {
	frames := make([]p2p.Frame, 0, maxVerifyDrain)
	arrivals := make([]arrival, 0, maxVerifyDrain)
	for {
		var ok bool
		frames, ok = host.NextFrames(ctx, frames[:0], maxVerifyDrain)
		arrivals = arrivalsOf(frames, arrivals[:0])
		clear(frames)
		if len(arrivals) > 0 {
			verify(ctx, arrivals)
		}
		clear(arrivals)
		if !ok {
			return
		}
	}
}

// verifyArrivals verifies frames together and hands what passes to the
// event loop, in the order the frames came.
func (n *Node) verifyArrivals(ctx context.Context, arrivals []arrival) {
	frames := make([]protocol.Frame, 0, len(arrivals))
	index := make([]int, len(arrivals)) // into frames; -1: dropped undecoded
	for i, a := range arrivals {
		index[i] = -1
		if a.client {
			signed, ok := n.decodeClientFrame(a.frame)
			if !ok {
				continue
			}
			frames = append(frames, protocol.Frame{ClientRequest: signed})
		} else {
			frames = append(frames, protocol.Frame{ReplicaFrame: a.frame.Data})
		}
		index[i] = len(frames) - 1
	}
	if len(frames) == 0 {
		return
	}
	verdicts := n.verifier.VerifyFramesAdmitting(frames, n.admission())
	for i, a := range arrivals {
		if index[i] < 0 {
			continue
		}
		v := verdicts[index[i]]
		if a.client {
			if in, ok := n.acceptClientRequest(a.frame, v); ok {
				n.push(ctx, in)
			}
			continue
		}
		n.acceptReplicaMessage(ctx, a.frame, v)
	}
}

// acceptReplicaMessage hands a verified replica frame to where it goes.
func (n *Node) acceptReplicaMessage(ctx context.Context, f p2p.Frame, v protocol.Verified) {
	if v.Err != nil {
		n.countSignature(v.Err)
		refused(n.host, n.metrics, n.log, f, v.Err)
		n.drop(reasonOf(v.Err), "from", f.FromIndex, "err", v.Err)
		return
	}
	m := v.Message
	n.metrics.ops.verified.Inc()
	n.metrics.ops.bytesReceived.WithLabelValues(kindOf(m.Body).String()).Add(float64(len(f.Data)))
	if req := m.Body.GetStateRequest(); req != nil {
		select {
		case n.stateRequests <- stateRequest{from: m.Body.From, req: req}:
		default:
			n.drop("state_requests_full")
		}
		return
	}
	n.push(ctx, input{msg: &m})
}

// verifyClientFrame decodes and verifies one client frame on its own.
func (n *Node) verifyClientFrame(f p2p.Frame) (input, bool) {
	signed, ok := n.decodeClientFrame(f)
	if !ok {
		return input{}, false
	}
	return n.acceptClientRequest(f, n.verifier.VerifyFrames([]protocol.Frame{{ClientRequest: signed}})[0])
}

// decodeClientFrame decodes a client frame down to its signed request.
func (n *Node) decodeClientFrame(f p2p.Frame) (*wire.Signed, bool) {
	signed, err := signedRequestOf(f)
	if err != nil {
		n.drop("malformed", "client", f.From, "err", err)
		return nil, false
	}
	return signed, true
}

// signedRequestOf decodes a client frame down to its signed request.
func signedRequestOf(f p2p.Frame) (*wire.Signed, error) {
	var frame wire.ClientFrame
	if err := proto.Unmarshal(f.Data, &frame); err != nil {
		return nil, err
	}
	if frame.GetRequest() == nil {
		return nil, errors.New("client frame without a request")
	}
	return frame.GetRequest(), nil
}

// sentByItsClient reports whether the verified request req came from the
// client it names: replies go back on the stream a request came on.
func sentByItsClient(f p2p.Frame, req *wire.Request) bool {
	id, err := identity.ClientPeerID(req.ClientId)
	return err == nil && id == f.From
}

// acceptClientRequest turns a verified client request into an input.
func (n *Node) acceptClientRequest(f p2p.Frame, v protocol.Verified) (input, bool) {
	if v.Err != nil {
		n.countSignature(v.Err)
		if n.host != nil {
			refused(n.host, n.metrics, n.log, f, v.Err)
		}
		n.drop(reasonOf(v.Err), "client", f.From, "err", v.Err)
		return input{}, false
	}
	req := v.Request
	n.metrics.ops.verified.Inc()
	if !sentByItsClient(f, req.Request) {
		n.drop("client_mismatch", "client", f.From)
		return input{}, false
	}
	return input{req: &req, client: f.From}, true
}

func (n *Node) push(ctx context.Context, in input) {
	select {
	case n.inbox <- in:
	case <-ctx.Done():
	default:
		n.drop("inbox_full")
	}
}

// countSignature counts a verification failure that was a bad signature.
func (n *Node) countSignature(err error) {
	if errors.Is(err, protocol.ErrBadSignature) {
		n.metrics.ops.rejected.Inc()
	}
}

func (n *Node) drop(reason string, args ...any) {
	n.metrics.dropped.WithLabelValues(reason).Inc()
	n.log.Debug("dropped", append([]any{"reason", reason}, args...)...)
}

// reasonOf maps a protocol error to a metric label.
func reasonOf(err error) string {
	for _, e := range []struct {
		err    error
		reason string
	}{
		{protocol.ErrBadSignature, "bad_signature"},
		{protocol.ErrMalformed, "malformed"},
		{protocol.ErrUnknownSender, "unknown_sender"},
		{protocol.ErrFromSelf, "from_self"},
		{protocol.ErrWrongView, "wrong_view"},
		{protocol.ErrNotFromPrimary, "not_from_primary"},
		{protocol.ErrFromPrimary, "prepare_from_primary"},
		{protocol.ErrOutsideWindow, "outside_window"},
		{protocol.ErrDigestMismatch, "digest_mismatch"},
		{protocol.ErrConflictingPrePrepare, "conflicting_pre_prepare"},
		{protocol.ErrDuplicate, "duplicate"},
		{protocol.ErrBatchTooLarge, "too_large"},
		{protocol.ErrQueueFull, "queue_full"},
		{protocol.ErrClientQueueFull, "client_queue_full"},
		{protocol.ErrCheckpointRejected, "checkpoint_rejected"},
		{protocol.ErrViewChangeRejected, "view_change_rejected"},
		{protocol.ErrNewViewRejected, "new_view_rejected"},
		{protocol.ErrStale, "stale"},
		{protocol.ErrRateLimited, "rate_limited"},
		{replica.ErrRequestTooOld, "request_too_old"},
		{replica.ErrUnexpectedStateChunk, "unexpected_state_chunk"},
	} {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return "other"
}

// eventLoop owns the replica driver (the core and the executor): it
// feeds it ticks and inputs, and after each tick or burst of inputs has it
// handle the core's Ready.
func (n *Node) eventLoop(ctx context.Context) {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			n.driver.Tick()
		case in := <-n.inbox:
			n.handle(in)
			for i := 1; i < maxBurst; i++ {
				select {
				case in = <-n.inbox:
					n.handle(in)
					continue
				default:
				}
				break
			}
		}
		if err := n.driver.Process(); err != nil {
			n.log.Error("replica stopped: storage or execution failed", "err", err)
			return
		}
		n.publishStatus()
		n.metrics.inboxDepth.Set(float64(len(n.inbox)))
	}
}

// handle hands one verified input to the driver and counts the outcome.
func (n *Node) handle(in input) {
	if in.msg != nil {
		chunk := in.msg.Body.GetStateChunk() != nil
		if err := n.driver.Step(*in.msg); err != nil {
			n.drop(reasonOf(err), "err", err)
			return
		}
		if !chunk {
			n.metrics.received.WithLabelValues(kindOf(in.msg.Body).String()).Inc()
		}
		return
	}
	if err := n.driver.Submit(*in.req); err != nil {
		n.drop(reasonOf(err), "err", err)
	}
}

func (n *Node) publishStatus() {
	st := n.driver.Status()
	prev := n.lastCore
	n.lastCore = st
	n.metrics.viewChangeAttempts.Add(float64(st.ViewChangesStarted - min(prev.ViewChangesStarted, st.ViewChangesStarted)))
	n.metrics.viewChanges.Add(float64(st.ViewChangesCompleted - min(prev.ViewChangesCompleted, st.ViewChangesCompleted)))
	if !st.ViewActive && n.viewChangeStarted.IsZero() {
		n.viewChangeStarted = time.Now()
		n.log.Info("changing view", "to", st.View)
	}
	if st.ViewActive && !n.viewChangeStarted.IsZero() {
		n.metrics.viewChangeSeconds.Observe(time.Since(n.viewChangeStarted).Seconds())
		n.log.Info("entered view", "view", st.View, "took", time.Since(n.viewChangeStarted).Round(time.Millisecond))
		n.viewChangeStarted = time.Time{}
	}
	if st.ViewActive {
		n.metrics.viewChanging.Set(0)
	} else {
		n.metrics.viewChanging.Set(1)
	}
	n.metrics.view.Set(float64(st.View))
	// Recovery and state transfer move these too, not only execute and
	// persistStable: a restarted or transferred replica must not report 0.
	n.metrics.executedSequence.Set(float64(n.executor.LastExecuted()))
	n.metrics.stableCheckpoint.Set(float64(st.LowWatermark))
	n.metrics.retransmissions.Set(float64(st.Retransmissions))
	n.metrics.slowPrimary.Set(float64(st.SlowPrimarySuspects))
	n.metrics.serveLimited.Set(float64(st.ServeLimited))
	if n.driver.Transferring() {
		n.metrics.transferring.Set(1)
	} else {
		n.metrics.transferring.Set(0)
	}
	n.status.Store(&Status{
		Index:            n.cfg.Index,
		View:             st.View,
		ExecutedSequence: n.executor.LastExecuted(),
		StableCheckpoint: st.LowWatermark,
		StateDigest:      n.executor.StateDigest(),
		RetainedSlots:    st.Slots,
		BufferedAhead:    st.Buffered,
		PendingRequests:  st.PendingRequests,
		Transferring:     st.Transferring,
		ViewActive:       st.ViewActive,
		ViewChanges:      st.ViewChangesCompleted,
		Leader:           int(st.View % uint64(len(n.cfg.Replicas))),
	})
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
