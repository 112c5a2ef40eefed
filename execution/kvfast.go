package execution

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pbftnode/pbftnode/wire"
)

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

// encodeSimpleOp returns the bytes proto.MarshalOptions{Deterministic:
// true} produces for a put (value), get or delete (value nil) of key: the
// oneof's field holding the message, whose key and value fields are
// omitted when empty, as proto3 omits them.
// TestSimpleOpEncodingMatchesProto checks the equivalence.
func encodeSimpleOp(field int, key, value []byte) []byte {
	inner := 0
	if len(key) > 0 {
		inner += 1 + protowire.SizeBytes(len(key))
	}
	if len(value) > 0 {
		inner += 1 + protowire.SizeBytes(len(value))
	}
	out := make([]byte, 0, 1+protowire.SizeBytes(inner))
	out = protowire.AppendTag(out, protowire.Number(field), protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(inner))
	if len(key) > 0 {
		out = protowire.AppendTag(out, opKeyField, protowire.BytesType)
		out = protowire.AppendBytes(out, key)
	}
	if len(value) > 0 {
		out = protowire.AppendTag(out, opValueField, protowire.BytesType)
		out = protowire.AppendBytes(out, value)
	}
	return out
}

// decodeResultFast decodes, without proto.Unmarshal's reflection, the
// encodings of wire.KVResult in the shape kvResult.encode produces: the
// ok, value and error fields each at most once, in field order, with
// single-byte tags and a valid UTF-8 error. For every input it accepts,
// proto.Unmarshal yields the same result; it rejects everything else
// (valid encodings of other shapes included, which DecodeResult decodes
// with proto.Unmarshal). Value aliases b.
func decodeResultFast(b []byte) (*wire.KVResult, bool) {
	var r wire.KVResult
	if len(b) > 0 && b[0] == byte(protowire.EncodeTag(resultOkField, protowire.VarintType)) {
		v, n := protowire.ConsumeVarint(b[1:])
		if n < 0 {
			return nil, false
		}
		r.Ok, b = v != 0, b[1+n:]
	}
	if len(b) > 0 && b[0] == byte(protowire.EncodeTag(resultValueField, protowire.BytesType)) {
		v, n := protowire.ConsumeBytes(b[1:])
		if n < 0 {
			return nil, false
		}
		r.Value, b = v, b[1+n:]
	}
	if len(b) > 0 && b[0] == byte(protowire.EncodeTag(resultErrorField, protowire.BytesType)) {
		v, n := protowire.ConsumeBytes(b[1:])
		if n < 0 || !utf8.Valid(v) {
			return nil, false
		}
		r.Error, b = string(v), b[1+n:]
	}
	if len(b) != 0 {
		return nil, false
	}
	return &r, true
}
