// decodeKVOperation decodes a pbftnode.wire.KVOperation (wire/wire.proto)
// from hostile bytes exactly as Go's proto.Unmarshal does, so every replica
// reaches the same result whichever implementation it runs: the same
// inputs are refused (truncated or overlong varints, field number 0 or
// over 2^29-1, a stray end-group, wire types 6 and 7, unbalanced or too
// deeply nested groups), unknown fields and known fields of another wire
// type are skipped, a repeated scalar or bytes field keeps its last value,
// and a oneof member that appears twice is merged, not replaced.
// It returns { op: 'put'|'get'|'delete'|'cas'|undefined, ...fields }
// and throws DecodeError on malformed input.
'use strict';

class DecodeError extends Error {}

const MAX_VALID_NUMBER = (1n << 29n) - 1n; // a message's own field numbers
const MAX_INT32 = (1n << 31n) - 1n; // field numbers inside skipped groups
const MAX_GROUP_NESTING = 10001; // Go's recursion limit for skipped groups

// consumeVarint returns [value, next offset].
function consumeVarint(buf, off) {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (off + i >= buf.length) throw new DecodeError('truncated varint');
    const b = buf[off + i];
    if (i === 9 && b > 1) throw new DecodeError('varint overflow');
    v |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (b < 0x80) return [v, off + i + 1];
  }
  throw new DecodeError('varint overflow');
}

function consumeBytes(buf, off) {
  const [n, start] = consumeVarint(buf, off);
  if (n > BigInt(buf.length - start)) throw new DecodeError('truncated bytes');
  const end = start + Number(n);
  return [buf.subarray(start, end), end];
}

// skipScalar skips a varint, fixed or length-delimited value.
function skipScalar(buf, off, wtyp) {
  switch (wtyp) {
    case 0: return consumeVarint(buf, off)[1];
    case 1: if (off + 8 > buf.length) throw new DecodeError('truncated fixed64'); return off + 8;
    case 5: if (off + 4 > buf.length) throw new DecodeError('truncated fixed32'); return off + 4;
    case 2: return consumeBytes(buf, off)[1];
    default: throw new DecodeError(`reserved wire type ${wtyp}`);
  }
}

// skipGroup skips the body of a group opened with field number num, up to
// its matching end-group tag, without recursion.
function skipGroup(buf, off, num) {
  const open = [num];
  while (open.length > 0) {
    let tag;
    [tag, off] = consumeVarint(buf, off);
    const num2 = tag >> 3n;
    const wtyp = Number(tag & 7n);
    if (num2 < 1n || num2 > MAX_INT32) throw new DecodeError('invalid field number');
    if (wtyp === 4) {
      if (num2 !== open[open.length - 1]) throw new DecodeError('mismatched end group');
      open.pop();
    } else if (wtyp === 3) {
      if (open.length + 1 > MAX_GROUP_NESTING) throw new DecodeError('groups nested too deeply');
      open.push(num2);
    } else {
      off = skipScalar(buf, off, wtyp);
    }
  }
  return off;
}

// decodeFields calls onField(number, wireType, value) for every varint
// (BigInt value) and length-delimited (Buffer value) field of a message;
// other fields are skipped. onField ignores fields it does not know.
function decodeFields(buf, onField) {
  let off = 0;
  while (off < buf.length) {
    let tag;
    [tag, off] = consumeVarint(buf, off);
    const num = tag >> 3n;
    const wtyp = Number(tag & 7n);
    if (num < 1n || num > MAX_VALID_NUMBER) throw new DecodeError('invalid field number');
    let value;
    switch (wtyp) {
      case 0: [value, off] = consumeVarint(buf, off); onField(Number(num), 0, value); break;
      case 2: [value, off] = consumeBytes(buf, off); onField(Number(num), 2, value); break;
      case 3: off = skipGroup(buf, off, num); break;
      case 4: throw new DecodeError('unexpected end group');
      default: off = skipScalar(buf, off, wtyp);
    }
  }
}

// The fields of the oneof's messages: name and kind by field number.
const MEMBERS = ['put', 'get', 'delete', 'cas'];
const FIELDS = {
  put: { 1: ['key', 'bytes'], 2: ['value', 'bytes'] },
  get: { 1: ['key', 'bytes'] },
  delete: { 1: ['key', 'bytes'] },
  cas: { 1: ['key', 'bytes'], 2: ['old_value', 'bytes'], 3: ['new_value', 'bytes'], 4: ['old_absent', 'bool'] },
};

function decodeKVOperation(buf) {
  let op;
  let fields = {};
  decodeFields(buf, (num, wtyp, value) => {
    if (num < 1 || num > MEMBERS.length || wtyp !== 2) return; // unknown
    const member = MEMBERS[num - 1];
    if (op !== member) {
      op = member;
      fields = {}; // another member replaces; the same one merges
    }
    const known = FIELDS[member];
    decodeFields(value, (n, t, v) => {
      const f = known[n];
      if (!f) return;
      if (f[1] === 'bytes' && t === 2) fields[f[0]] = Buffer.from(v);
      if (f[1] === 'bool' && t === 0) fields[f[0]] = v !== 0n;
    });
  });
  return { op, ...fields };
}

module.exports = { decodeKVOperation, DecodeError };
