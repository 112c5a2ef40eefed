package raftnode

import (
	"context"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/raftreplica"
	"github.com/pbftnode/pbftnode/wire"
)

// receiveFrames takes the frames the host schedules fairly across its
// sources (each replica, each established client key, and the newcomer
// keys together) and decodes them off the event loop, in one goroutine so
// that each replica's frames stay in order.
func (n *Node) receiveFrames(ctx context.Context) {
	node.ReceiveLoop(ctx, n.Host, func(ctx context.Context, arrivals []node.Arrival) {
		for _, a := range arrivals {
			if a.Client {
				n.receiveClientFrame(ctx, a.Frame)
			} else {
				n.receiveReplicaFrame(ctx, a.Frame)
			}
		}
	})
}

// receiveReplicaFrame decodes a frame from another replica: raft messages
// and state chunks go to the loop, state requests to the snapshot server.
func (n *Node) receiveReplicaFrame(ctx context.Context, f p2p.Frame) {
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
		n.metrics.CountReceived(kind)
		n.metrics.CountReceivedBytes(kind, len(f.Data))
		n.push(ctx, raftInput{from: from, msg: m})
	case *wire.RaftFrame_StateChunk:
		n.push(ctx, raftInput{from: from, chunk: body.StateChunk})
	case *wire.RaftFrame_StateRequest:
		select {
		case n.stateReqs <- node.StateRequest{From: from, Req: body.StateRequest}:
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
func (n *Node) receiveClientFrame(ctx context.Context, f p2p.Frame) {
	if reads, reason, ok := node.ReadBatchFrameRequests(f.Data, string(f.From)); ok {
		if reason != "" {
			n.drop(reason, "client", f.From)
			return
		}
		n.push(ctx, raftInput{reads: reads, client: f.From})
		return
	}
	var frame wire.ClientFrame
	if err := proto.Unmarshal(f.Data, &frame); err != nil || (frame.GetRequest() == nil && frame.GetReads() == nil) {
		n.drop("malformed", "client", f.From, "err", err)
		return
	}
	if b := frame.GetReads(); b != nil {
		reads, reason := node.ReadBatchRequests(b, string(f.From))
		if reason != "" {
			n.drop(reason, "client", f.From)
			return
		}
		n.push(ctx, raftInput{reads: reads, client: f.From})
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

func (n *Node) push(ctx context.Context, in raftInput) {
	if !node.Push(ctx, n.inbox, in) {
		n.drop("inbox_full")
	}
}

func (n *Node) drop(reason string, args ...any) { n.metrics.Drop(n.log, reason, args...) }

// eventLoop owns the driver (and through it the core, the executor and
// the state transfer).
func (n *Node) eventLoop(ctx context.Context) {
	if err := n.driver.Start(); err != nil {
		n.log.Warn("no startup snapshot to serve", "err", err)
	}
	node.EventLoop[raftInput]{
		TickInterval: n.cfg.TickInterval,
		Inbox:        n.inbox,
		Tick:         n.driver.Tick,
		Handle:       n.handle,
		Process:      n.driver.Process,
		Processed:    n.publishStatus,
		Metrics:      n.metrics,
		Log:          n.log,
	}.Run(ctx)
}

func (n *Node) handle(in raftInput) {
	switch {
	case in.msg != nil:
		if err := n.driver.Step(in.from, in.msg); err != nil {
			n.drop("rejected", "from", in.from, "err", err)
		}
	case in.chunk != nil:
		if err := n.driver.Chunk(in.from, in.chunk); err != nil {
			n.log.Error("state transfer: install", "err", err)
		}
	case in.joined != nil:
		n.joined(*in.joined)
	case in.retired != nil:
		n.retired(*in.retired)
	case in.reads != nil:
		for _, req := range in.reads {
			n.driver.Read(req)
		}
	case in.req != nil && in.req.GetReadOnly():
		// Answered without a log append (ReadIndex), or refused with an
		// error reply.
		n.driver.Read(in.req)
	case in.req != nil:
		if err := n.driver.Submit(in.req); err != nil {
			n.drop("refused", "client", in.client, "err", err)
		}
	}
}

// raftPorts connects the Raft driver to the runtime: it is the driver's
// Network (the libp2p host), Snapshots (the snapshot server's channel) and
// Observer (the metrics). It runs on the event loop.
type raftPorts struct {
	n *Node
	// reads sends the read-only replies of one step, a client's together
	// (reads.go).
	reads node.ReadReplies
}

var (
	_ raftreplica.Network   = (*raftPorts)(nil)
	_ raftreplica.Snapshots = (*raftPorts)(nil)
	_ raftreplica.Observer  = (*raftPorts)(nil)
)

// SendRaft encodes m into a raft frame and sends it to replica to.
func (p *raftPorts) SendRaft(to uint32, m *raftpb.Message) bool {
	n := p.n
	b, err := proto.Marshal(m)
	if err != nil {
		n.log.Error("encode raft message", "err", err)
		return false
	}
	frame, err := proto.Marshal(&wire.RaftFrame{Body: &wire.RaftFrame_Message{Message: b}})
	if err != nil {
		n.log.Error("encode raft frame", "err", err)
		return false
	}
	sent := n.Host.Send(to, frame)
	n.metrics.CountSent(m.GetType().String(), len(frame))
	return sent
}

// SendStateRequest sends a state request to replica to.
func (p *raftPorts) SendStateRequest(to uint32, req *wire.StateRequest) {
	p.n.sendFrame(to, &wire.RaftFrame{Body: &wire.RaftFrame_StateRequest{StateRequest: req}}, "StateRequest")
}

// Reply sends a result to its client, if the client has a stream to this
// replica; the replica the client talks to replies when it applies.
func (p *raftPorts) Reply(r *wire.Reply) {
	node.ReplyToClient(p.n.Host, p.n.metrics, r)
}

// ReadReplies sends the answers of one step's read-only requests, each
// client's together (reads.go).
func (p *raftPorts) ReadReplies(rs []*wire.Reply) { p.reads.Send(p.n.Host, p.n.metrics, rs) }

// Keep hands a snapshot to the snapshot server, or releases it when the
// server is behind.
func (p *raftPorts) Keep(s *execution.StateSnapshot) {
	select {
	case p.n.snapshots <- s:
	default:
		s.Release()
	}
}

// Persisted counts the applied batches (timedLog times the persists).
func (p *raftPorts) Persisted(out *raftmode.Output) {
	p.n.syncMembers()
	m := p.n.metrics
	for _, size := range out.AppliedBatches {
		m.CommittedBatches.Inc()
		m.CommittedRequests.Add(float64(size))
		m.BatchSize.Observe(float64(size))
	}
}

// StateInstalled needs nothing more: the fetcher's observer timed it.
func (p *raftPorts) StateInstalled(uint32, uint64) {}

// sendFrame encodes frame and sends it to replica to, counting it; it
// returns the bytes sent (0 when the frame could not be encoded or queued).
func (n *Node) sendFrame(to uint32, frame *wire.RaftFrame, kind string) (sent int) {
	b, err := proto.Marshal(frame)
	if err != nil {
		n.log.Error("encode raft frame", "err", err)
		return 0
	}
	if !n.Host.Send(to, b) {
		return 0
	}
	n.metrics.CountSent(kind, len(b))
	return len(b)
}

func (n *Node) publishStatus() {
	st := n.core.Status()
	if st.Leader >= 0 && st.Leader != n.lastLeader {
		if n.lastLeader >= 0 || n.leaderTerms > 0 {
			n.metrics.ViewChanges.Inc()
		}
		n.leaderTerms++
		n.lastLeader = st.Leader
	}
	applied := n.core.Membership()
	n.applied.Store(&applied)
	cur, epoch := applied, st.Epoch
	if r := n.learnedRetired; r != nil && r.Epoch > epoch {
		cur, epoch = *r, r.Epoch // removed while cut off: say so
	}
	n.metrics.View.Set(float64(st.Term))
	if n.core.Joint() {
		n.configJoint.Set(1)
	} else {
		n.configJoint.Set(0)
	}
	n.metrics.ExecutedSequence.Set(float64(st.Applied))
	n.metrics.StableCheckpoint.Set(float64(st.SnapshotIndex))
	n.metrics.SetChanging(st.Leader < 0, n.driver.Transferring())
	n.status.Store(&node.Status{
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
		Epoch:            epoch,
		Members:          cur.Indices(),
	})
}
