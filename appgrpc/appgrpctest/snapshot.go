package appgrpctest

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/appgrpc"
	"github.com/pbftnode/pbftnode/execution"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CheckSnapshotRestore fills the fresh application behind source, takes
// its snapshot (over two chunks) and fails the test unless the fresh
// application behind target refuses it with a wrong digest or truncated
// (InvalidArgument, state unchanged), then restores it to the same State
// and the same answers, goes on identically, and restores the initial
// state from an empty snapshot.
func CheckSnapshotRestore(t *testing.T, source, target *appgrpc.Client) {
	t.Helper()
	ctx := context.Background()
	ops := RandomKVOperations(rand.New(rand.NewPCG(18, 2)), 200)
	ops = append(ops, execution.EncodePut([]byte("large"), bytes.Repeat([]byte{7}, execution.MaxValueSize)))
	ops = append(ops, execution.EncodePut([]byte("large2"), bytes.Repeat([]byte{8}, execution.MaxValueSize)))
	for i, op := range ops {
		if _, _, err := source.Execute(ctx, uint64(i+1), []app.Operation{{Payload: op}}); err != nil {
			t.Fatal(err)
		}
	}
	state, err := source.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var snapshot bytes.Buffer
	if err := source.Snapshot(ctx, &snapshot); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snapshot.Len() <= 2*appgrpc.MaxChunkBytes {
		t.Fatalf("snapshot of %d bytes: want one over two chunks", snapshot.Len())
	}

	wrongDigest := state
	wrongDigest.Digest[0] ^= 1
	if err := target.Restore(ctx, wrongDigest, bytes.NewReader(snapshot.Bytes())); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Restore with a wrong digest: %v; want InvalidArgument", err)
	}
	truncated := snapshot.Bytes()[:snapshot.Len()-1]
	if err := target.Restore(ctx, state, bytes.NewReader(truncated)); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Restore of a truncated snapshot: %v; want InvalidArgument", err)
	}
	if got, err := target.Info(ctx); err != nil || got != (app.State{}) {
		t.Fatalf("Info after refused restores = %+v, %v; want the initial state", got, err)
	}

	if err := target.Restore(ctx, state, bytes.NewReader(snapshot.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, err := target.Info(ctx); err != nil || got != state {
		t.Fatalf("restored Info = %+v, %v; want %+v", got, err, state)
	}
	for _, key := range []string{"k0", "k3", "k7", "k11", "large", "large2", "absent"} {
		get := execution.EncodeGet([]byte(key))
		a, errA := source.Query(ctx, get)
		b, errB := target.Query(ctx, get)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("Query(%s): source %x (%v), restored %x (%v)", key, a, errA, b, errB)
		}
	}
	next := []app.Operation{{Payload: execution.EncodeCAS([]byte("k1"), nil, true, []byte("z"))}}
	r1, d1, err1 := source.Execute(ctx, state.Sequence+1, next)
	r2, d2, err2 := target.Execute(ctx, state.Sequence+1, next)
	if err1 != nil || err2 != nil || !bytes.Equal(r1[0], r2[0]) || d1 != d2 {
		t.Fatalf("next batch: source %x %x %v, restored %x %x %v", r1, d1, err1, r2, d2, err2)
	}
	if err := target.Restore(ctx, app.State{}, nil); err != nil {
		t.Fatalf("Restore of the initial state: %v", err)
	}
	if got, err := target.Info(ctx); err != nil || got != (app.State{}) {
		t.Fatalf("Info after restoring the initial state = %+v, %v", got, err)
	}
}
