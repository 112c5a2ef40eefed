package raftnode

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/statetransfer"
	"github.com/pbftnode/pbftnode/wire"
)

// serveSnapshots answers state requests off the event loop from the
// two latest snapshots (the Core snapshots at the same indexes on every
// replica). It owns the snapshots and releases those it drops.
func (n *Node) serveSnapshots(ctx context.Context) {
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
			// A request's window: at most statetransfer.MaxChunksPerRequest chunks.
			for _, chunk := range statetransfer.ServeChunks(statetransfer.Pick(snaps, r.Req.GetSequence()), r.Req, node.StateChunkBytes) {
				if !chunk.Unavailable {
					n.metrics.StateServedBytes.Add(float64(proto.Size(chunk)))
				}
				n.sendFrame(r.From, &wire.RaftFrame{Body: &wire.RaftFrame_StateChunk{StateChunk: chunk}}, "StateChunk")
			}
		}
	}
}
