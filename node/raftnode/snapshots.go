package raftnode

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// serveSnapshots answers state requests off the event loop from the
// two latest snapshots (the Core snapshots at the same indexes on every
// replica), within each requester's budget (node.ChunkServer: what does
// not fit waits, counted as rate_limited). It owns the snapshots and
// releases those it drops.
func (n *Node) serveSnapshots(ctx context.Context) {
	var snaps []*execution.StateSnapshot // oldest first, at most 2
	defer func() {
		for _, s := range snaps {
			s.Release()
		}
	}()
	server := node.NewChunkServer()
	defer server.Stop()
	answer := func(r node.StateRequest) (int, *wire.StateChunk) { return n.answerStateRequest(snaps, r) }
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
			if !server.Serve(r, time.Now(), answer) {
				n.drop("rate_limited", "from", r.From, "kind", "state_request")
			}
		case now := <-server.RetryC():
			for range server.Retry(now, answer) {
				n.drop("rate_limited", "kind", "state_request")
			}
		}
	}
}

// answerStateRequest sends r.From one chunk from snaps and returns the
// bytes sent and the chunk.
func (n *Node) answerStateRequest(snaps []*execution.StateSnapshot, r node.StateRequest) (int, *wire.StateChunk) {
	chunk, err := statetransfer.ServeChunk(statetransfer.Pick(snaps, r.Req.GetSequence()), r.Req, node.StateChunkBytes)
	if err != nil {
		n.log.Warn("state transfer: reading snapshot", "sequence", r.Req.GetSequence(), "err", err)
	} else if !chunk.Unavailable {
		n.metrics.StateServedBytes.Add(float64(proto.Size(chunk)))
	}
	return n.sendFrame(r.From, &wire.RaftFrame{Body: &wire.RaftFrame_StateChunk{StateChunk: chunk}}, "StateChunk"), chunk
}
