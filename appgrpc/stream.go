package appgrpc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/appgrpc/apppb"
)

// Snapshot streams the application's whole state to w. Each chunk must be
// at most MaxChunkBytes and the total at most Options.MaxSnapshotBytes;
// the wait for each chunk is bounded by Options.CallTimeout. On an error,
// w may hold part of the snapshot: the caller discards it.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) error {
	cl, err := c.begin(ctx, "Snapshot")
	if err != nil {
		return err
	}
	defer cl.end()
	stream, err := c.rpc.Snapshot(cl.ctx, &apppb.SnapshotRequest{})
	if err != nil {
		return cl.fail(err)
	}
	var total int64
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return cl.fail(err)
		}
		cl.progress()
		data := chunk.GetData()
		if len(data) > MaxChunkBytes {
			return cl.invalid("snapshot chunk of %d bytes, limit %d", len(data), MaxChunkBytes)
		}
		total += int64(len(data))
		if total > c.opts.MaxSnapshotBytes {
			return cl.invalid("snapshot over %d bytes (the limit)", c.opts.MaxSnapshotBytes)
		}
		if _, err := w.Write(data); err != nil {
			return cl.wrap(fmt.Errorf("write snapshot: %w", err))
		}
	}
}

// Restore replaces the application's state with the snapshot r holds,
// taken at state (a nil r is an empty snapshot). It sends the state, then
// r in chunks of MaxChunkBytes, at most Options.MaxSnapshotBytes in all;
// the wait for each chunk to go out is bounded by Options.CallTimeout.
func (c *Client) Restore(ctx context.Context, state app.State, r io.Reader) error {
	cl, err := c.begin(ctx, fmt.Sprintf("Restore(sequence %d)", state.Sequence))
	if err != nil {
		return err
	}
	defer cl.end()
	stream, err := c.rpc.Restore(cl.ctx)
	if err != nil {
		return cl.fail(err)
	}
	first := &apppb.RestoreRequest{Part: &apppb.RestoreRequest_State{State: &apppb.State{Sequence: state.Sequence, Digest: state.Digest[:]}}}
	if err := stream.Send(first); err != nil {
		return cl.sendFailed(stream, err)
	}
	if r != nil {
		if err := c.sendChunks(cl, stream, r); err != nil {
			return err
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return cl.fail(err)
	}
	return nil
}

// sendChunks sends r in chunks of MaxChunkBytes.
func (c *Client) sendChunks(cl *call, stream apppb.Application_RestoreClient, r io.Reader) error {
	var total int64
	for {
		// A fresh buffer per chunk: gRPC may still hold a sent message.
		buf := make([]byte, MaxChunkBytes)
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			total += int64(n)
			if total > c.opts.MaxSnapshotBytes {
				return cl.wrap(fmt.Errorf("snapshot to restore over %d bytes (the limit)", c.opts.MaxSnapshotBytes))
			}
			if err := stream.Send(&apppb.RestoreRequest{Part: &apppb.RestoreRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return cl.sendFailed(stream, err)
			}
			cl.progress()
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return cl.wrap(fmt.Errorf("read snapshot to restore: %w", err))
		}
	}
}

// sendFailed returns the error of a failed Send: on io.EOF the server
// ended the stream, and its status says why.
func (cl *call) sendFailed(stream apppb.Application_RestoreClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, recvErr := stream.CloseAndRecv(); recvErr != nil {
			return cl.fail(recvErr)
		}
		return cl.invalid("restore stream ended before the snapshot was sent")
	}
	return cl.fail(err)
}
