package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/appgrpc"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// startApp serves a fresh grpc-app on a loopback port until the test ends
// and returns a client of it.
func startApp(t *testing.T) *appgrpc.Client {
	t.Helper()
	lis, err := listenOn("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := newServer(slog.New(slog.DiscardHandler), maxMessageBytes)
	go server.Serve(lis)
	t.Cleanup(server.Stop)
	c, err := appgrpc.Dial("grpc://"+lis.Addr().String(), appgrpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// builtinKV returns the built-in key-value store over an in-memory DB.
func builtinKV(t *testing.T) *execution.KV {
	t.Helper()
	db, err := storage.OpenMem(storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kv, err := execution.NewKV(db.LevelDB())
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// edgeOperations are the operations whose results the built-in store
// defines most carefully: limits, malformed bytes, cas corner cases.
func edgeOperations() [][]byte {
	big := bytes.Repeat([]byte("v"), execution.MaxValueSize)
	longKey := bytes.Repeat([]byte("k"), execution.MaxKeySize+1)
	casOp := func(c *wire.KVCompareAndSwap) []byte {
		out, err := proto.Marshal(&wire.KVOperation{Op: &wire.KVOperation_Cas{Cas: c}})
		if err != nil {
			panic(err)
		}
		return out
	}
	return [][]byte{
		execution.EncodeGet([]byte("a")),
		execution.EncodePut([]byte("a"), []byte("1")),
		execution.EncodeGet([]byte("a")),
		execution.EncodePut([]byte(""), nil), // empty key and value
		execution.EncodeGet([]byte("")),
		execution.EncodePut([]byte("big"), big),
		execution.EncodePut([]byte("bigger"), append(big, 'x')),
		execution.EncodePut(longKey, []byte("x")),
		execution.EncodeGet(longKey),
		execution.EncodeDelete(longKey),
		execution.EncodeCAS(longKey, nil, true, []byte("x")),
		execution.EncodeCAS([]byte("a"), []byte("wrong"), false, []byte("2")),
		execution.EncodeCAS([]byte("a"), []byte("1"), false, []byte("2")),
		execution.EncodeCAS([]byte("new"), nil, true, []byte("n")),
		execution.EncodeCAS([]byte("new"), nil, true, []byte("again")),
		execution.EncodeCAS([]byte("absent"), []byte("x"), false, []byte("y")),
		casOp(&wire.KVCompareAndSwap{Key: []byte("a"), OldValue: []byte("2"), OldAbsent: true}),
		execution.EncodeCAS([]byte("a"), append(big, 'x'), false, nil),
		execution.EncodeDelete([]byte("a")),
		execution.EncodeDelete([]byte("never")),
		execution.EncodeGet([]byte("a")),
		nil,                                       // no operation set
		{0xff, 0xff, 0xff},                        // malformed
		{0x0a, 0x00},                              // a put holding nothing
		{0x12, 0x03, 0x0a, 0x01, 'a', 0x12, 0x00}, // a get, then an empty get
		{0x0a, 0x02, 0x0a, 0x00, 0x18, 0x01},      // unknown field after a put
	}
}

// randomOperations draws n operations over a few keys from a seeded source.
func randomOperations(rng *rand.Rand, n int) [][]byte {
	ops := make([][]byte, n)
	for i := range ops {
		key := []byte(fmt.Sprintf("k%d", rng.IntN(12)))
		value := []byte(fmt.Sprintf("v%d", rng.IntN(4)))
		switch rng.IntN(6) {
		case 0, 1:
			ops[i] = execution.EncodePut(key, value)
		case 2:
			ops[i] = execution.EncodeGet(key)
		case 3:
			ops[i] = execution.EncodeDelete(key)
		case 4:
			ops[i] = execution.EncodeCAS(key, value, false, []byte(fmt.Sprintf("v%d", rng.IntN(4))))
		default:
			ops[i] = execution.EncodeCAS(key, nil, true, value)
		}
	}
	return ops
}

// TestResultsMatchBuiltinKV: every operation's result through the gRPC
// protocol is byte-identical to the built-in store's, and so is the digest
// after every batch.
func TestResultsMatchBuiltinKV(t *testing.T) {
	c, kv := startApp(t), builtinKV(t)
	ctx := context.Background()
	ops := append(edgeOperations(), randomOperations(rand.New(rand.NewPCG(18, 1)), 600)...)
	sequence := uint64(0)
	for start := 0; start < len(ops); start += 7 {
		batch := ops[start:min(start+7, len(ops))]
		appOps := make([]app.Operation, len(batch))
		for i, op := range batch {
			appOps[i] = app.Operation{Client: []byte("client"), RequestNumber: uint64(start + i), Payload: op}
		}
		sequence++
		results, digest, err := c.Execute(ctx, sequence, appOps)
		if err != nil {
			t.Fatalf("Execute(%d): %v", sequence, err)
		}
		for i, op := range batch {
			if want := kv.Execute(op); !bytes.Equal(results[i], want) {
				t.Fatalf("operation %d (%x): grpc-app result %x, built-in %x", start+i, op, results[i], want)
			}
		}
		if digest != kv.Digest() {
			t.Fatalf("after batch %d: grpc-app digest %x, built-in %x", sequence, digest, kv.Digest())
		}
	}
	state, err := c.Info(ctx)
	if err != nil || state.Sequence != sequence || state.Digest != kv.Digest() {
		t.Fatalf("Info = %+v, %v; want sequence %d and the built-in digest", state, err, sequence)
	}
	for k := range 12 {
		get := execution.EncodeGet([]byte(fmt.Sprintf("k%d", k)))
		answer, err := c.Query(ctx, get)
		if want := kv.Execute(get); err != nil || !bytes.Equal(answer, want) {
			t.Fatalf("Query(k%d) = %x, %v; built-in get %x", k, answer, err, want)
		}
	}
}

// TestOutOfOrderBatchRefused: a batch at any sequence but the next
// changes nothing and says which sequence is next.
func TestOutOfOrderBatchRefused(t *testing.T) {
	c := startApp(t)
	ctx := context.Background()
	_, _, err := c.Execute(ctx, 2, []app.Operation{{Payload: execution.EncodePut([]byte("a"), []byte("1"))}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the next is 1") {
		t.Fatalf("Execute at sequence 2 of a fresh app: %v; want FailedPrecondition", err)
	}
	if state, err := c.Info(ctx); err != nil || state != (app.State{}) {
		t.Fatalf("Info after a refused batch = %+v, %v; want the initial state", state, err)
	}
}

// TestSnapshotRestoresIntoFreshServer: a snapshot of one server restored
// into a fresh one gives the same state, digest and answers; a snapshot
// that does not match its announced digest, or is corrupt, is refused and
// changes nothing.
func TestSnapshotRestoresIntoFreshServer(t *testing.T) {
	source, target := startApp(t), startApp(t)
	ctx := context.Background()
	ops := randomOperations(rand.New(rand.NewPCG(18, 2)), 200)
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
	corrupt := bytes.Clone(snapshot.Bytes())
	corrupt = corrupt[:len(corrupt)-1]
	if err := target.Restore(ctx, state, bytes.NewReader(corrupt)); status.Code(err) != codes.InvalidArgument {
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
	// Both go on identically.
	next := []app.Operation{{Payload: execution.EncodeCAS([]byte("k1"), nil, true, []byte("z"))}}
	r1, d1, err1 := source.Execute(ctx, state.Sequence+1, next)
	r2, d2, err2 := target.Execute(ctx, state.Sequence+1, next)
	if err1 != nil || err2 != nil || !bytes.Equal(r1[0], r2[0]) || d1 != d2 {
		t.Fatalf("next batch: source %x %x %v, restored %x %x %v", r1, d1, err1, r2, d2, err2)
	}
	// And back to the initial state.
	if err := target.Restore(ctx, app.State{}, nil); err != nil {
		t.Fatalf("Restore of the initial state: %v", err)
	}
	if got, err := target.Info(ctx); err != nil || got != (app.State{}) {
		t.Fatalf("Info after restoring the initial state = %+v, %v", got, err)
	}
}

// TestParseSnapshotRefusesHostileBytes: every prefix and a few mutations
// of a valid snapshot are refused or parsed, never a panic.
func TestParseSnapshotRefusesHostileBytes(t *testing.T) {
	s := newKVState()
	s.set([]byte("a"), []byte("1"))
	s.set([]byte("b"), []byte("2"))
	valid := s.snapshot()
	// Entry boundaries: after the magic, after entry a (4 bytes).
	boundary := map[int]bool{len(snapshotMagic): true, len(snapshotMagic) + 4: true}
	for n := range len(valid) {
		if _, err := parseSnapshot(1, valid[:n]); (err == nil) != boundary[n] {
			t.Errorf("prefix of %d bytes: error %v", n, err)
		}
	}
	swapped := append([]byte(snapshotMagic), 1, 'b', 1, '2', 1, 'a', 1, '1')
	if _, err := parseSnapshot(1, swapped); err == nil || !strings.Contains(err.Error(), "strictly increasing") {
		t.Errorf("out-of-order keys: %v", err)
	}
	huge := append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff, 0x0f)
	if _, err := parseSnapshot(1, huge); err == nil || !strings.Contains(err.Error(), "over limit") {
		t.Errorf("huge length: %v", err)
	}
}

// TestListenOnUnixSocket: --listen unix:///PATH serves there, replacing a
// stale socket file.
func TestListenOnUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "grpcapp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	lis, err := listenOn("unix://" + path)
	if err != nil {
		t.Fatalf("listenOn over a stale socket: %v", err)
	}
	server := newServer(slog.New(slog.DiscardHandler), maxMessageBytes)
	go server.Serve(lis)
	defer server.Stop()
	c, err := appgrpc.Dial("unix://"+path, appgrpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Execute(context.Background(), 1, []app.Operation{{Payload: execution.EncodePut([]byte("a"), []byte("1"))}}); err != nil {
		t.Fatalf("Execute over the unix socket: %v", err)
	}
	if _, err := listenOn("unix://relative"); err == nil {
		t.Error("a relative socket path was accepted")
	}
	if _, err := listenOn("127.0.0.1"); err == nil {
		t.Error("an address without a port was accepted")
	}
}
