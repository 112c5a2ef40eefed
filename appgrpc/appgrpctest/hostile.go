package appgrpctest

import (
	"bytes"
	"math/rand/v2"

	"github.com/pbftnode/pbftnode/execution"
)

// HostileKVOperations returns crafted malformed or unusual encodings that
// proto.Unmarshal accepts or refuses in ways a hand-written decoder can
// get wrong (groups, reserved wire types, field numbers, overlong varints,
// repeated oneof members), then n seeded mutations (flipped, inserted,
// deleted bytes, truncations) of valid operations.
func HostileKVOperations(rng *rand.Rand, n int) [][]byte {
	nested := func(depth int) []byte { // an unknown field 5 holding depth nested groups
		return append(bytes.Repeat([]byte{0x2b}, depth), bytes.Repeat([]byte{0x2c}, depth)...)
	}
	ops := [][]byte{
		{0x08, 0x01},                         // field 1 as a varint: unknown, skipped: no operation set
		{0x00},                               // field number 0
		{0x0e},                               // wire type 6
		{0x0f},                               // wire type 7
		{0x0c},                               // an end group with no start
		{0x0b, 0x0c},                         // an empty group as field 1: unknown, skipped
		{0x0b, 0x14},                         // a group closed by another number
		{0x0b},                               // an unclosed group
		{0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00}, // field 2^29-1 as a varint: unknown
		{0x80, 0x80, 0x80, 0x80, 0x10, 0x00}, // field 2^29 : invalid here
		{0x2b, 0xf8, 0xff, 0xff, 0xff, 0x3f, 0x00, 0x2c},                               // field 2^31-1 inside a group: skipped
		{0x2b, 0x80, 0x80, 0x80, 0x80, 0x40, 0x00, 0x2c},                               // field 2^31 inside a group: invalid
		{0x12, 0x00, 0x1a, 0x00},                                                       // get, then delete: delete replaces
		{0x0a, 0x04, 0x0a, 0x02, 'k', '1', 0x12, 0x00},                                 // put k1, then get: the get is of the empty key
		{0x0a, 0x03, 0x0a, 0x01, 'a', 0x0a, 0x03, 0x12, 0x01, 'b'},                     // put key a, then put value b: merged
		{0x0a, 0x05, 0x0a, 0x01, 'a', 0x0a, 0x00},                                      // a put whose key appears twice: the last wins
		{0x22, 0x04, 0x0a, 0x00, 0x20, 0x02},                                           // cas, old_absent as 2: true
		{0x22, 0x04, 0x0a, 0x00, 0x22, 0x00},                                           // cas, old_absent as bytes: unknown
		{0x22, 0x03, 0x0a, 0x00, 0x22, 0x00},                                           // a length one short: field 0 follows
		{0x12, 0x02, 0x0a, 0x81, 0x00},                                                 // overlong length prefix... truncated
		{0x12, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // a 10-byte varint
		{0x12, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, // varint overflow
		{0x12, 0x04, 0x0d, 0x01, 0x02, 0x03},                                           // a truncated fixed32
		{0x12, 0x09, 0x09, 1, 2, 3, 4, 5, 6, 7, 8},                                     // a fixed64, unknown
		append([]byte{}, nested(10001)...),                                             // groups as deep as Go allows
		append([]byte{}, nested(10002)...),                                             // one too deep
	}
	valid := append(EdgeKVOperations()[:21], RandomKVOperations(rng, 32)...)
	for range n {
		op := bytes.Clone(valid[rng.IntN(len(valid))])
		switch k := rng.IntN(4); {
		case k == 0 && len(op) > 0:
			op[rng.IntN(len(op))] ^= byte(1 + rng.IntN(255))
		case k == 1:
			i := rng.IntN(len(op) + 1)
			op = append(op[:i], append([]byte{byte(rng.IntN(256))}, op[i:]...)...)
		case k == 2 && len(op) > 0:
			i := rng.IntN(len(op))
			op = append(op[:i], op[i+1:]...)
		case len(op) > 0:
			op = op[:rng.IntN(len(op))]
		}
		ops = append(ops, op)
	}
	return append(ops, execution.EncodeGet([]byte("k1"))) // a last valid one
}
