package execution

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// checkSimpleOpAgainstProto fails if decodeSimpleOp accepts op but
// proto.Unmarshal rejects it or decodes another operation.
func checkSimpleOpAgainstProto(t *testing.T, op []byte) {
	t.Helper()
	d, ok := decodeSimpleOp(op)
	if !ok {
		return
	}
	var decoded wire.KVOperation
	if err := proto.Unmarshal(op, &decoded); err != nil {
		t.Fatalf("decodeSimpleOp accepted %x, proto.Unmarshal rejects it: %v", op, err)
	}
	var field int
	var key, value []byte
	switch o := decoded.Op.(type) {
	case *wire.KVOperation_Put:
		field, key, value = opPutField, o.Put.GetKey(), o.Put.GetValue()
	case *wire.KVOperation_Get:
		field, key = opGetField, o.Get.GetKey()
	case *wire.KVOperation_Delete:
		field, key = opDeleteField, o.Delete.GetKey()
	}
	if field != d.field || !bytes.Equal(key, d.key) || !bytes.Equal(value, d.value) {
		t.Fatalf("op %x: decodeSimpleOp gives field %d key %x value %x, proto %d %x %x", op, d.field, d.key, d.value, field, key, value)
	}
}

// mutate returns a copy of s with one to three random edits: a byte
// replaced, the tail cut, a byte appended or a bit flipped.
func mutate(rng *rand.Rand, s []byte) []byte {
	m := bytes.Clone(s)
	for range 1 + rng.IntN(3) {
		switch r := rng.IntN(4); {
		case r == 0 && len(m) > 0:
			m[rng.IntN(len(m))] = byte(rng.Uint32())
		case r == 1 && len(m) > 0:
			m = m[:rng.IntN(len(m))]
		case r == 2:
			m = append(m, byte(rng.Uint32()))
		default:
			if len(m) > 0 {
				m[rng.IntN(len(m))] ^= 1 << rng.IntN(8)
			}
		}
	}
	return m
}

// TestDecodeSimpleOpMatchesProto: on encoded operations and random
// mutations of them, whatever decodeSimpleOp accepts, proto.Unmarshal
// decodes the same way; and it accepts what EncodePut, EncodeGet and
// EncodeDelete produce.
func TestDecodeSimpleOpMatchesProto(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	big := bytes.Repeat([]byte("x"), 300)
	seeds := [][]byte{
		EncodePut([]byte("k"), []byte("v")), EncodePut(nil, nil), EncodePut([]byte("k"), nil), EncodePut(nil, []byte("v")),
		EncodePut(big, big), EncodeGet([]byte("k")), EncodeGet(nil), EncodeDelete([]byte("k")), EncodeDelete(big),
		EncodeCAS([]byte("k"), []byte("v"), false, []byte("w")), {}, {0x0a}, {0x0a, 0x00},
	}
	for i, s := range seeds[:9] {
		if _, ok := decodeSimpleOp(s); !ok {
			t.Fatalf("seed %d (%x) not accepted", i, s)
		}
	}
	for _, s := range seeds {
		checkSimpleOpAgainstProto(t, s)
		for range 2000 {
			m := mutate(rng, s)
			checkSimpleOpAgainstProto(t, m)
		}
	}
}

// TestKVResultEncodingMatchesProto: kvResult.encode gives exactly the
// bytes of deterministic proto.Marshal, including a non-nil empty slice
// for an empty result.
func TestKVResultEncodingMatchesProto(t *testing.T) {
	values := [][]byte{nil, {}, []byte("v"), bytes.Repeat([]byte("v"), 200), bytes.Repeat([]byte("w"), 70000)}
	for _, ok := range []bool{false, true} {
		for _, v := range values {
			for _, e := range []string{"", "malformed operation", kvInternalFail} {
				got := kvResult{ok: ok, value: v, err: e}.encode()
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&wire.KVResult{Ok: ok, Value: v, Error: e})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
					t.Fatalf("ok=%v value len %d error %q: encode %x (nil %v), proto %x (nil %v)", ok, len(v), e, got, got == nil, want, want == nil)
				}
			}
		}
	}
}

func FuzzDecodeSimpleOp(f *testing.F) {
	f.Add(EncodePut([]byte("k"), []byte("v")))
	f.Add(EncodeGet([]byte("k")))
	f.Add(EncodeDelete([]byte("k")))
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, op []byte) {
		checkSimpleOpAgainstProto(t, op)
	})
}

// TestSimpleOpEncodingMatchesProto: EncodePut, EncodeGet and EncodeDelete
// give exactly the bytes of deterministic proto.Marshal of the operation.
func TestSimpleOpEncodingMatchesProto(t *testing.T) {
	values := [][]byte{nil, {}, []byte("v"), bytes.Repeat([]byte("v"), 200), bytes.Repeat([]byte("w"), 70000)}
	marshal := func(op *wire.KVOperation) []byte {
		t.Helper()
		out, err := proto.MarshalOptions{Deterministic: true}.Marshal(op)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, k := range values {
		for _, v := range values {
			if got, want := EncodePut(k, v), marshal(&wire.KVOperation{Op: &wire.KVOperation_Put{Put: &wire.KVPut{Key: k, Value: v}}}); !bytes.Equal(got, want) {
				t.Fatalf("put key len %d value len %d: %x, proto %x", len(k), len(v), got, want)
			}
		}
		if got, want := EncodeGet(k), marshal(&wire.KVOperation{Op: &wire.KVOperation_Get{Get: &wire.KVGet{Key: k}}}); !bytes.Equal(got, want) {
			t.Fatalf("get key len %d: %x, proto %x", len(k), got, want)
		}
		if got, want := EncodeDelete(k), marshal(&wire.KVOperation{Op: &wire.KVOperation_Delete{Delete: &wire.KVDelete{Key: k}}}); !bytes.Equal(got, want) {
			t.Fatalf("delete key len %d: %x, proto %x", len(k), got, want)
		}
	}
}

// checkResultAgainstProto fails if decodeResultFast accepts b but
// proto.Unmarshal rejects it or decodes another result.
func checkResultAgainstProto(t *testing.T, b []byte) {
	t.Helper()
	got, ok := decodeResultFast(b)
	if !ok {
		return
	}
	var want wire.KVResult
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatalf("decodeResultFast accepted %x, proto.Unmarshal rejects it: %v", b, err)
	}
	if got.GetOk() != want.GetOk() || !bytes.Equal(got.GetValue(), want.GetValue()) || got.GetError() != want.GetError() {
		t.Fatalf("result %x: fast %v, proto %v", b, got, &want)
	}
}

// TestDecodeResultFastMatchesProto: decodeResultFast accepts every result
// kvResult.encode produces, and on those and random mutations of them,
// whatever it accepts proto.Unmarshal decodes the same way.
func TestDecodeResultFastMatchesProto(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var seeds [][]byte
	for _, ok := range []bool{false, true} {
		for _, v := range [][]byte{nil, []byte("v"), bytes.Repeat([]byte("v"), 200)} {
			for _, e := range []string{"", "malformed operation"} {
				enc := kvResult{ok: ok, value: v, err: e}.encode()
				if _, accepted := decodeResultFast(enc); !accepted {
					t.Fatalf("encoded result %x not accepted", enc)
				}
				seeds = append(seeds, enc)
			}
		}
	}
	seeds = append(seeds, []byte{0x1a, 0x01, 0xff}, []byte{0x12, 0x00, 0x08, 0x01}, []byte{0x08, 0x02})
	for _, s := range seeds {
		checkResultAgainstProto(t, s)
		for range 2000 {
			m := mutate(rng, s)
			checkResultAgainstProto(t, m)
		}
	}
	// Shapes the fast path leaves to proto.Unmarshal still decode.
	for _, b := range [][]byte{{0x12, 0x00, 0x08, 0x01}, {0x08, 0x01, 0x08, 0x00}} {
		var want wire.KVResult
		if err := proto.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got, err := DecodeResult(b)
		if err != nil || got.GetOk() != want.GetOk() || !bytes.Equal(got.GetValue(), want.GetValue()) {
			t.Fatalf("DecodeResult(%x) = %v, %v; proto %v", b, got, err, &want)
		}
	}
	if _, err := DecodeResult([]byte{0x1a, 0x01, 0xff}); err == nil {
		t.Fatal("DecodeResult accepted an error string that is not UTF-8")
	}
}
