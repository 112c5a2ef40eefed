package appgrpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pbftnode/pbftnode/appgrpc/apppb"
	"google.golang.org/grpc"
)

// fakeApp is an in-test application server. By default it keeps a
// sequence, answers one result per operation (the payload reversed), a
// digest of 32 copies of the sequence's low byte, echoes queries, streams
// snapshotChunks and records what Restore received. The hooks, when set,
// replace the default answers.
type fakeApp struct {
	apppb.UnimplementedApplicationServer

	mu             sync.Mutex
	sequence       uint64
	snapshotChunks [][]byte
	restoredState  *apppb.State
	restored       []byte

	onInfo    func(context.Context) (*apppb.InfoResponse, error)
	onExecute func(context.Context, *apppb.ExecuteRequest) (*apppb.ExecuteResponse, error)
	onRestore func(apppb.Application_RestoreServer) error
}

func fakeDigest(sequence uint64) []byte { return bytes.Repeat([]byte{byte(sequence)}, DigestSize) }

func (f *fakeApp) Info(ctx context.Context, _ *apppb.InfoRequest) (*apppb.InfoResponse, error) {
	if f.onInfo != nil {
		return f.onInfo(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &apppb.InfoResponse{State: &apppb.State{Sequence: f.sequence, Digest: fakeDigest(f.sequence)}}, nil
}

func (f *fakeApp) Execute(ctx context.Context, req *apppb.ExecuteRequest) (*apppb.ExecuteResponse, error) {
	if f.onExecute != nil {
		return f.onExecute(ctx, req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sequence = req.GetSequence()
	return &apppb.ExecuteResponse{Results: reverseEach(req.GetOperations()), Digest: fakeDigest(f.sequence)}, nil
}

// reverseEach is the fake's result of each operation: its client, its
// request number's low byte and its payload, reversed.
func reverseEach(ops []*apppb.Operation) [][]byte {
	results := make([][]byte, len(ops))
	for i, op := range ops {
		r := append(append(bytes.Clone(op.GetClient()), byte(op.GetRequestNumber())), op.GetPayload()...)
		for a, b := 0, len(r)-1; a < b; a, b = a+1, b-1 {
			r[a], r[b] = r[b], r[a]
		}
		results[i] = r
	}
	return results
}

func (f *fakeApp) Query(_ context.Context, req *apppb.QueryRequest) (*apppb.QueryResponse, error) {
	return &apppb.QueryResponse{Answer: append([]byte("answer:"), req.GetQuery()...)}, nil
}

func (f *fakeApp) Snapshot(_ *apppb.SnapshotRequest, stream apppb.Application_SnapshotServer) error {
	for _, c := range f.snapshotChunks {
		if err := stream.Send(&apppb.SnapshotChunk{Data: c}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeApp) Restore(stream apppb.Application_RestoreServer) error {
	if f.onRestore != nil {
		return f.onRestore(stream)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	var data []byte
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		data = append(data, msg.GetChunk()...)
	}
	f.mu.Lock()
	f.restoredState, f.restored = first.GetState(), data
	f.sequence = first.GetState().GetSequence()
	f.mu.Unlock()
	return stream.SendAndClose(&apppb.RestoreResponse{})
}

// serve serves f on network ("tcp": loopback, "unix": a socket in a fresh
// directory) until the test ends and returns the target to dial.
func serve(t *testing.T, f *fakeApp, network string) string {
	t.Helper()
	var (
		lis    net.Listener
		err    error
		target string
	)
	switch network {
	case "unix":
		// A short directory: socket paths are limited to about 100 bytes.
		dir, derr := os.MkdirTemp("", "appgrpc")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "app.sock")
		lis, err = net.Listen("unix", path)
		target = "unix://" + path
	default:
		lis, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			target = "grpc://" + lis.Addr().String()
		}
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	server := grpc.NewServer(grpc.MaxRecvMsgSize(DefaultMaxMessageBytes), grpc.MaxSendMsgSize(DefaultMaxMessageBytes))
	apppb.RegisterApplicationServer(server, f)
	go server.Serve(lis)
	t.Cleanup(server.Stop)
	return target
}

// dial dials target and closes the client when the test ends.
func dial(t *testing.T, target string, o Options) *Client {
	t.Helper()
	c, err := Dial(target, o)
	if err != nil {
		t.Fatalf("Dial(%q): %v", target, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
