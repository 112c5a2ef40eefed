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
