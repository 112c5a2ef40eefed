package execution

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// KV.ReadOnly answers exactly the bytes Execute returns for a get (both
// encodings), and nothing else is read-only; it changes nothing.
func TestKVReadOnlyMatchesExecute(t *testing.T) {
	kv := newTestKV(t)
	kv.Execute(EncodePut([]byte("a"), []byte("1")))
	protoGet, err := proto.Marshal(&wire.KVOperation{Op: &wire.KVOperation_Get{Get: &wire.KVGet{Key: []byte("a")}}})
	if err != nil {
		t.Fatal(err)
	}
	digest := kv.Digest()
	for _, op := range [][]byte{EncodeGet([]byte("a")), EncodeGet([]byte("missing")), EncodeGet(nil), protoGet} {
		got, ok := kv.ReadOnly(nil, op)
		if !ok {
			t.Fatalf("get %x not read-only", op)
		}
		if want := kv.Execute(op); !bytes.Equal(got, want) {
			t.Fatalf("ReadOnly(%x) = %x, Execute = %x", op, got, want)
		}
	}
	for _, op := range [][]byte{EncodePut([]byte("a"), []byte("2")), EncodeDelete([]byte("a")),
		EncodeCAS([]byte("a"), []byte("1"), false, []byte("3")), []byte("garbage"), nil} {
		if _, ok := kv.ReadOnly(nil, op); ok {
			t.Fatalf("operation %x classified read-only", op)
		}
	}
	if kv.Digest() != digest {
		t.Fatal("ReadOnly changed the state")
	}
}

// Executor.Read uses the application's classification, and an
// application that is not a ReadOnlyApplication answers nothing.
func TestExecutorRead(t *testing.T) {
	e := openReplica(t, t.TempDir()).exe
	c := bytes.Repeat([]byte("c"), 32)
	apply(t, e, 1, Request{ClientID: c, RequestNumber: 1, Operation: putOp("k", "v")})
	raw, err := e.Read(c, EncodeGet([]byte("k")))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := DecodeResult(raw); err != nil || string(res.Value) != "v" {
		t.Fatalf("read %v (%v), want v", res, err)
	}
	if _, err := e.Read(c, EncodePut([]byte("k"), []byte("w"))); err != ErrNotReadOnly {
		t.Fatalf("read of a put: %v, want ErrNotReadOnly", err)
	}
	if e.Status(c, 2) != RequestNew || e.LastExecuted() != 1 {
		t.Fatal("a read touched the client window or the sequence")
	}
}
