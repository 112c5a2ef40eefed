package execution

import "google.golang.org/protobuf/encoding/protowire"

// kvResult is a wire.KVResult before encoding.
type kvResult struct {
	ok    bool
	value []byte
	err   string
}

// Field numbers of wire.KVResult and wire.KVOperation (see wire.proto).
const (
	resultOkField    = 1
	resultValueField = 2
	resultErrorField = 3

	opPutField    = 1
	opGetField    = 2
	opDeleteField = 3
	opKeyField    = 1 // KVPut.key, KVGet.key, KVDelete.key
	opValueField  = 2 // KVPut.value
)

// encode returns the bytes proto.MarshalOptions{Deterministic: true}
// produces for the equivalent wire.KVResult: the set fields in field
// number order, proto3 defaults (false, empty) omitted, and a non-nil
// empty slice for an empty result. TestKVResultEncodingMatchesProto
// checks the equivalence.
func (r kvResult) encode() []byte {
	size := 0
	if r.ok {
		size += 2
	}
	if len(r.value) > 0 {
		size += 1 + protowire.SizeBytes(len(r.value))
	}
	if r.err != "" {
		size += 1 + protowire.SizeBytes(len(r.err))
	}
	out := make([]byte, 0, size)
	if r.ok {
		out = protowire.AppendTag(out, resultOkField, protowire.VarintType)
		out = protowire.AppendVarint(out, 1)
	}
	if len(r.value) > 0 {
		out = protowire.AppendTag(out, resultValueField, protowire.BytesType)
		out = protowire.AppendBytes(out, r.value)
	}
	if r.err != "" {
		out = protowire.AppendTag(out, resultErrorField, protowire.BytesType)
		out = protowire.AppendString(out, r.err)
	}
	return out
}

// simpleOp is a put, get or delete decoded by decodeSimpleOp.
type simpleOp struct {
	field      int // opPutField, opGetField or opDeleteField
	key, value []byte
}

// decodeSimpleOp decodes, without proto.Unmarshal's reflection and
// allocations, the encodings of put, get and delete operations in the
// shape EncodePut, EncodeGet and EncodeDelete produce: one field of the
// oneof, holding at most the key field and (put only) then the value
// field, each once, single-byte tags. For every input it accepts (ok),
// proto.Unmarshal into a wire.KVOperation succeeds and yields that
// operation with the same key and value bytes; it rejects everything else
// (including valid encodings of other shapes, which the caller decodes
// with proto.Unmarshal). key and value alias op.
func decodeSimpleOp(op []byte) (simpleOp, bool) {
	var d simpleOp
	if len(op) < 2 {
		return d, false
	}
	switch op[0] {
	case byte(protowire.EncodeTag(opPutField, protowire.BytesType)):
		d.field = opPutField
	case byte(protowire.EncodeTag(opGetField, protowire.BytesType)):
		d.field = opGetField
	case byte(protowire.EncodeTag(opDeleteField, protowire.BytesType)):
		d.field = opDeleteField
	default:
		return d, false
	}
	inner, n := protowire.ConsumeBytes(op[1:])
	if n < 0 || 1+n != len(op) {
		return d, false
	}
	if len(inner) > 0 && inner[0] == byte(protowire.EncodeTag(opKeyField, protowire.BytesType)) {
		key, n := protowire.ConsumeBytes(inner[1:])
		if n < 0 {
			return d, false
		}
		d.key, inner = key, inner[1+n:]
	}
	if d.field == opPutField && len(inner) > 0 && inner[0] == byte(protowire.EncodeTag(opValueField, protowire.BytesType)) {
		value, n := protowire.ConsumeBytes(inner[1:])
		if n < 0 {
			return d, false
		}
		d.value, inner = value, inner[1+n:]
	}
	if len(inner) != 0 {
		return d, false
	}
	return d, true
}
