package node

import (
	"context"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/wire"
)

// receiveFrames takes the frames the host schedules fairly across its
// sources (each replica, each established client key, and the newcomer
// keys together) and decodes them off the event loop, in one goroutine so
// that each replica's frames stay in order.
func (n *RaftNode) receiveFrames(ctx context.Context) {
	defer n.wg.Done()
	frames := make([]p2p.Frame, 0, maxVerifyDrain)
	for {
		var ok bool
		frames, ok = n.host.NextFrames(ctx, frames[:0], maxVerifyDrain)
		for _, f := range frames {
			if f.FromIndex >= 0 {
				n.receiveReplicaFrame(ctx, f)
			} else {
				n.receiveClientFrame(ctx, f)
			}
		}
		clear(frames)
		if !ok {
			return
		}
	}
}

// receiveReplicaFrame decodes a frame from another replica: raft messages
// and state chunks go to the loop, state requests to the snapshot server.
func (n *RaftNode) receiveReplicaFrame(ctx context.Context, f p2p.Frame) {
	var frame wire.RaftFrame
	if err := proto.Unmarshal(f.Data, &frame); err != nil || f.FromIndex < 0 {
		n.drop("malformed", "from", f.FromIndex, "err", err)
		return
	}
	from := uint32(f.FromIndex)
	switch body := frame.Body.(type) {
	case *wire.RaftFrame_Message:
		m := new(raftpb.Message)
		if err := proto.Unmarshal(body.Message, m); err != nil {
			n.drop("malformed", "from", from, "err", err)
			return
		}
		kind := m.GetType().String()
		n.metrics.received.WithLabelValues(kind).Inc()
		n.metrics.ops.bytesReceived.WithLabelValues(kind).Add(float64(len(f.Data)))
		n.push(ctx, raftInput{from: from, msg: m})
	case *wire.RaftFrame_StateChunk:
		n.push(ctx, raftInput{from: from, chunk: body.StateChunk})
	case *wire.RaftFrame_StateRequest:
		select {
		case n.stateReqs <- stateRequest{from: from, req: body.StateRequest}:
		default:
			n.drop("state_requests_full")
		}
	default:
		n.drop("malformed", "from", from)
	}
}

// receiveClientFrame decodes a client request. The Noise session of the
// stream authenticates the client, so the request must name the stream's
// peer; its signature is not checked (crash-fault model).
func (n *RaftNode) receiveClientFrame(ctx context.Context, f p2p.Frame) {
	var frame wire.ClientFrame
	if err := proto.Unmarshal(f.Data, &frame); err != nil || frame.GetRequest() == nil {
		n.drop("malformed", "client", f.From, "err", err)
		return
	}
	req := new(wire.Request)
	if err := proto.Unmarshal(frame.GetRequest().GetPayload(), req); err != nil {
		n.drop("malformed", "client", f.From, "err", err)
		return
	}
	if id, ok := clientPeer(req.GetClientId()); !ok || id != f.From {
		n.drop("client_mismatch", "client", f.From)
		return
	}
	n.push(ctx, raftInput{req: req, client: f.From})
}

func (n *RaftNode) push(ctx context.Context, in raftInput) {
	select {
	case n.inbox <- in:
	case <-ctx.Done():
	default:
		n.drop("inbox_full")
	}
}

func (n *RaftNode) drop(reason string, args ...any) {
	n.metrics.dropped.WithLabelValues(reason).Inc()
	n.log.Debug("dropped", append([]any{"reason", reason}, args...)...)
}

// eventLoop owns the core, the executor and the state transfer.
func (n *RaftNode) eventLoop(ctx context.Context) {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	if need := n.core.WaitingForState(); need != nil {
		// A crash interrupted a restore, or the log starts after the
		// application state: fetch the state before anything else.
		n.startTransfer(*need)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			n.core.Tick()
			n.transferTick()
		case in := <-n.inbox:
			n.handle(in)
		burst:
			for i := 1; i < maxBurst; i++ {
				select {
				case in = <-n.inbox:
					n.handle(in)
				default:
					break burst
				}
			}
		}
		if err := n.process(); err != nil {
			n.log.Error("replica stopped: storage or execution failed", "err", err)
			return
		}
		n.metrics.inboxDepth.Set(float64(len(n.inbox)))
	}
}

func (n *RaftNode) handle(in raftInput) {
	switch {
	case in.msg != nil:
		if err := n.core.Step(in.from, in.msg); err != nil {
			n.drop("rejected", "from", in.from, "err", err)
		}
	case in.chunk != nil:
		n.handleStateChunk(in.from, in.chunk)
	case in.req != nil:
		reply, err := n.core.Submit(in.req)
		if err != nil {
			n.drop("refused", "client", in.client, "err", err)
			return
		}
		if reply != nil {
			n.reply(*reply)
		}
	}
}

// process hands the core's output to the transport: the core persisted
// it already.
func (n *RaftNode) process() error {
	start := time.Now()
	out, err := n.core.Process()
	if err != nil {
		return err
	}
	if len(out.Messages) > 0 || len(out.AppliedBatches) > 0 {
		n.metrics.persistSeconds.Observe(time.Since(start).Seconds())
	}
	for _, m := range out.Messages {
		n.sendRaft(m)
	}
	for _, size := range out.AppliedBatches {
		n.metrics.committedBatches.Inc()
		n.metrics.committedRequests.Add(float64(size))
		n.metrics.batchSize.Observe(float64(size))
	}
	for _, r := range out.Replies {
		n.reply(r)
	}
	if out.Snapshot != nil {
		select {
		case n.snapshots <- out.Snapshot:
		default:
			out.Snapshot.Release()
		}
	}
	if out.NeedState != nil {
		n.startTransfer(*out.NeedState)
	}
	n.publishStatus()
	return nil
}

func (n *RaftNode) sendRaft(m *raftpb.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		n.log.Error("encode raft message", "err", err)
		return
	}
	frame, err := proto.Marshal(&wire.RaftFrame{Body: &wire.RaftFrame_Message{Message: b}})
	if err != nil {
		n.log.Error("encode raft frame", "err", err)
		return
	}
	to := uint32(m.GetTo() - 1)
	sent := n.host.Send(to, frame)
	if m.GetType() == raftpb.MessageType_MsgSnap {
		n.core.ReportSnapshot(to, sent)
	} else if !sent {
		n.core.ReportUnreachable(to)
	}
	kind := m.GetType().String()
	n.metrics.sent.WithLabelValues(kind).Inc()
	n.metrics.ops.bytesSent.WithLabelValues(kind).Add(float64(len(frame)))
}

func (n *RaftNode) sendFrame(to uint32, frame *wire.RaftFrame, kind string) {
	b, err := proto.Marshal(frame)
	if err != nil {
		n.log.Error("encode raft frame", "err", err)
		return
	}
	if n.host.Send(to, b) {
		n.metrics.sent.WithLabelValues(kind).Inc()
		n.metrics.ops.bytesSent.WithLabelValues(kind).Add(float64(len(b)))
	}
}

// reply sends a result to its client, if the client has a stream to this
// replica; the replica the client talks to replies when it applies.
func (n *RaftNode) reply(r execution.Reply) {
	id, ok := clientPeer(r.ClientID)
	if !ok {
		return
	}
	hint := uint32(0)
	if l := n.core.Leader(); l >= 0 {
		hint = uint32(l) + 1
	}
	b, err := proto.Marshal(&wire.Reply{
		View: n.core.Term(), ClientId: r.ClientID, RequestNumber: r.RequestNumber,
		Replica: n.cfg.Index, Result: r.Result, LeaderHint: hint,
	})
	if err != nil {
		return
	}
	if n.host.SendToClient(id, b) {
		n.metrics.clientReplies.Inc()
	}
}

func (n *RaftNode) publishStatus() {
	st := n.core.Status()
	if st.Leader >= 0 && st.Leader != n.lastLeader {
		if n.lastLeader >= 0 || n.leaderTerms > 0 {
			n.metrics.viewChanges.Inc()
		}
		n.leaderTerms++
		n.lastLeader = st.Leader
	}
	n.metrics.view.Set(float64(st.Term))
	n.metrics.executedSequence.Set(float64(st.Applied))
	n.metrics.stableCheckpoint.Set(float64(st.SnapshotIndex))
	if st.Leader >= 0 {
		n.metrics.viewChanging.Set(0)
	} else {
		n.metrics.viewChanging.Set(1)
	}
	if n.transfer != nil {
		n.metrics.transferring.Set(1)
	} else {
		n.metrics.transferring.Set(0)
	}
	n.status.Store(&Status{
		Index:            n.cfg.Index,
		View:             st.Term,
		ExecutedSequence: st.Applied,
		StableCheckpoint: st.SnapshotIndex,
		StateDigest:      n.executor.StateDigest(),
		PendingRequests:  st.PendingRequests,
		Transferring:     st.WaitingForState,
		ViewActive:       st.Leader >= 0,
		ViewChanges:      n.leaderTerms - min(n.leaderTerms, 1),
		Leader:           st.Leader,
	})
}
