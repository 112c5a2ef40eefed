package node

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// raftTransfer fetches the application state a raftmode.Core waits for: a
// snapshot at need.Index or later (statetransfer.Target without Exact),
// from one peer at a time, the leader that sent the raft snapshot first.
// Every replica snapshots at the same indexes, so any peer can serve one.
// It lives on the event loop from the need until the Core accepts the
// state (RaftNode.transfer is nil otherwise).
type raftTransfer struct {
	fetch *statetransfer.Fetcher
}

func (n *RaftNode) startTransfer(need raftmode.StateNeed) {
	if n.transfer == nil {
		n.transfer = &raftTransfer{fetch: statetransfer.New(statetransfer.Config{
			Restorer: n.executor,
			Request: func(to uint32, req *wire.StateRequest) {
				n.sendFrame(to, &wire.RaftFrame{Body: &wire.RaftFrame_StateRequest{StateRequest: req}}, "StateRequest")
			},
			Logger:   n.log,
			Observer: &transferMetrics{m: n.metrics},
		})}
	}
	n.transfer.fetch.Start(need.Target(len(n.cfg.Replicas), n.cfg.Index))
	if !n.transfer.fetch.Active() {
		n.transfer = nil // no peer to ask (a single replica)
	}
}

func (n *RaftNode) transferTick() {
	if n.transfer != nil {
		n.transfer.fetch.Tick()
	}
}

func (n *RaftNode) handleStateChunk(from uint32, c *wire.StateChunk) {
	if n.transfer == nil {
		return
	}
	if _, done := n.transfer.fetch.Chunk(from, c); !done {
		return
	}
	if err := n.core.StateInstalled(); err != nil {
		n.log.Error("state transfer: install", "err", err)
		n.transfer.fetch.Fail("install")
		return
	}
	n.transfer = nil
}

// serveRaftSnapshots answers state requests off the event loop from the
// two latest snapshots (the Core snapshots at the same indexes on every
// replica). It owns the snapshots and releases those it drops.
func (n *RaftNode) serveRaftSnapshots(ctx context.Context) {
	defer n.wg.Done()
	var snaps []*execution.StateSnapshot // oldest first, at most 2
	defer func() {
		for _, s := range snaps {
			s.Release()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-n.snapshots:
			snaps = append(snaps, s)
			if len(snaps) > 2 {
				snaps[0].Release()
				snaps = snaps[1:]
			}
		case r := <-n.stateReqs:
			chunk := statetransfer.Serve(statetransfer.Pick(snaps, r.req.GetSequence()), r.req, stateChunkBytes)
			if !chunk.Unavailable {
				n.metrics.stateServedBytes.Add(float64(proto.Size(chunk)))
			}
			n.sendFrame(r.from, &wire.RaftFrame{Body: &wire.RaftFrame_StateChunk{StateChunk: chunk}}, "StateChunk")
		}
	}
}
