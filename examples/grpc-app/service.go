package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/pbftnode/pbftnode/appgrpc/apppb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits of the protocol (app.proto).
const (
	digestSize       = 32
	maxChunkBytes    = 1 << 20
	maxSnapshotBytes = 1 << 30
)

// service serves the Application protocol over one in-memory kvState.
// Calls are serialized by mu (the replica makes one at a time anyway).
type service struct {
	apppb.UnimplementedApplicationServer
	logger *slog.Logger

	mu    sync.Mutex
	state *kvState
}

func newService(logger *slog.Logger) *service {
	return &service{logger: logger, state: newKVState()}
}

func (s *service) currentState() *apppb.State {
	digest := s.state.sum.bytes()
	return &apppb.State{Sequence: s.state.sequence, Digest: digest[:]}
}

// Info returns the sequence and digest of the state.
func (s *service) Info(context.Context, *apppb.InfoRequest) (*apppb.InfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &apppb.InfoResponse{State: s.currentState()}, nil
}

// Execute executes the batch at the next sequence, every operation in
// order, and returns their results and the new digest.
func (s *service) Execute(_ context.Context, req *apppb.ExecuteRequest) (*apppb.ExecuteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := s.state.sequence + 1; req.GetSequence() != want {
		return nil, status.Errorf(codes.FailedPrecondition, "batch at sequence %d, but the next is %d", req.GetSequence(), want)
	}
	results := make([][]byte, len(req.GetOperations()))
	for i, op := range req.GetOperations() {
		results[i] = s.state.execute(op.GetPayload())
	}
	s.state.sequence = req.GetSequence()
	digest := s.state.sum.bytes()
	s.logger.Debug("executed batch", "sequence", req.GetSequence(), "operations", len(results))
	return &apppb.ExecuteResponse{Results: results, Digest: digest[:]}, nil
}

// Query answers a get without ordering it.
func (s *service) Query(_ context.Context, req *apppb.QueryRequest) (*apppb.QueryResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &apppb.QueryResponse{Answer: s.state.query(req.GetQuery())}, nil
}

// Snapshot streams the whole state in chunks of at most maxChunkBytes.
func (s *service) Snapshot(_ *apppb.SnapshotRequest, stream apppb.Application_SnapshotServer) error {
	s.mu.Lock()
	snapshot := s.state.snapshot()
	s.mu.Unlock()
	for len(snapshot) > 0 {
		n := min(len(snapshot), maxChunkBytes)
		if err := stream.Send(&apppb.SnapshotChunk{Data: snapshot[:n]}); err != nil {
			return err
		}
		snapshot = snapshot[n:]
	}
	return nil
}

// Restore replaces the state with the snapshot streamed after the first
// message's state, once it is whole and valid and its digest is the one
// announced; on any error the state is left as it was.
func (s *service) Restore(stream apppb.Application_RestoreServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	want := first.GetState()
	if want == nil || len(want.GetDigest()) != digestSize {
		return status.Error(codes.InvalidArgument, "the first message must carry the state, with a 32-byte digest")
	}
	snapshot, err := receiveChunks(stream)
	if err != nil {
		return err
	}
	restored, err := parseSnapshot(want.GetSequence(), snapshot)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "snapshot at sequence %d: %v", want.GetSequence(), err)
	}
	digest := restored.sum.bytes()
	initial := want.GetSequence() == 0 && len(snapshot) == 0
	if !initial && string(digest[:]) != string(want.GetDigest()) {
		return status.Errorf(codes.InvalidArgument, "snapshot at sequence %d has digest %x, the state announced %x", want.GetSequence(), digest, want.GetDigest())
	}
	s.mu.Lock()
	s.state = restored
	s.mu.Unlock()
	s.logger.Info("restored", "sequence", want.GetSequence(), "entries", len(restored.entries), "bytes", len(snapshot))
	return stream.SendAndClose(&apppb.RestoreResponse{})
}

// receiveChunks collects the rest of a Restore stream, bounding each
// chunk and the total.
func receiveChunks(stream apppb.Application_RestoreServer) ([]byte, error) {
	var snapshot []byte
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return snapshot, nil
		}
		if err != nil {
			return nil, err
		}
		chunk, ok := msg.GetPart().(*apppb.RestoreRequest_Chunk)
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "only the first message may carry a state")
		}
		if len(chunk.Chunk) > maxChunkBytes {
			return nil, status.Errorf(codes.InvalidArgument, "chunk of %d bytes over the limit %d", len(chunk.Chunk), maxChunkBytes)
		}
		if len(snapshot)+len(chunk.Chunk) > maxSnapshotBytes {
			return nil, status.Error(codes.ResourceExhausted, fmt.Sprintf("snapshot over %d bytes", maxSnapshotBytes))
		}
		snapshot = append(snapshot, chunk.Chunk...)
	}
}
