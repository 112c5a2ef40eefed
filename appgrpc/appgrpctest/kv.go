package appgrpctest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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

// keys is the number of distinct keys RandomKVOperations draws from.
const keys = 12

// BuiltinKV returns the built-in key-value store over an in-memory
// database closed when the test ends.
func BuiltinKV(t testing.TB) *execution.KV {
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

// EdgeKVOperations are the operations whose results the built-in store
// defines most carefully: empty and oversized keys and values, malformed
// bytes, the corners of compare-and-swap.
func EdgeKVOperations() [][]byte {
	big := bytes.Repeat([]byte("v"), execution.MaxValueSize)
	longKey := bytes.Repeat([]byte("k"), execution.MaxKeySize+1)
	casOp := func(c *wire.KVCompareAndSwap) []byte {
		out, err := proto.Marshal(&wire.KVOperation{Op: &wire.KVOperation_Cas{Cas: c}})
		if err != nil {
			panic(fmt.Sprintf("appgrpctest: marshal: %v", err))
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
		execution.EncodePut([]byte("bigger"), append(bytes.Clone(big), 'x')),
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
		execution.EncodeCAS([]byte("a"), append(bytes.Clone(big), 'x'), false, nil),
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

// RandomKVOperations draws n puts, gets, deletes and compare-and-swaps
// over a few keys and values from rng.
func RandomKVOperations(rng *rand.Rand, n int) [][]byte {
	ops := make([][]byte, n)
	for i := range ops {
		key := []byte(fmt.Sprintf("k%d", rng.IntN(keys)))
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

// CheckMatchesKV executes the edge operations, a seeded random sequence
// and hostile encodings, in batches of 7, on the fresh application behind c and on the
// built-in store, and fails the test unless every result is
// byte-identical, the digest after every batch equal, Info right, and
// Query of a get answering as the built-in get does.
func CheckMatchesKV(t *testing.T, c *appgrpc.Client) {
	t.Helper()
	kv := BuiltinKV(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(18, 1))
	ops := append(EdgeKVOperations(), RandomKVOperations(rng, 600)...)
	ops = append(ops, HostileKVOperations(rng, 2000)...)
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
				t.Fatalf("operation %d (%x, %d bytes): application result %x, built-in %x", start+i, op[:min(len(op), 48)], len(op), results[i], want)
			}
		}
		if digest != kv.Digest() {
			t.Fatalf("after batch %d: application digest %x, built-in %x", sequence, digest, kv.Digest())
		}
	}
	state, err := c.Info(ctx)
	if err != nil || state.Sequence != sequence || state.Digest != kv.Digest() {
		t.Fatalf("Info = %+v, %v; want sequence %d and the built-in digest", state, err, sequence)
	}
	for k := range keys {
		get := execution.EncodeGet([]byte(fmt.Sprintf("k%d", k)))
		answer, err := c.Query(ctx, get)
		if want := kv.Execute(get); err != nil || !bytes.Equal(answer, want) {
			t.Fatalf("Query(k%d) = %x, %v; built-in get %x", k, answer, err, want)
		}
	}
}

// CheckOutOfOrderRefused fails the test unless the fresh application
// behind c refuses a batch at sequence 2 with FAILED_PRECONDITION and
// stays at the initial state.
func CheckOutOfOrderRefused(t *testing.T, c *appgrpc.Client) {
	t.Helper()
	ctx := context.Background()
	_, _, err := c.Execute(ctx, 2, []app.Operation{{Payload: execution.EncodePut([]byte("a"), []byte("1"))}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the next is 1") {
		t.Fatalf("Execute at sequence 2 of a fresh application: %v; want FailedPrecondition saying the next is 1", err)
	}
	if state, err := c.Info(ctx); err != nil || state != (app.State{}) {
		t.Fatalf("Info after a refused batch = %+v, %v; want the initial state", state, err)
	}
}
