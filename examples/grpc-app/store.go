package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// Limits of the key-value semantics, the built-in store's: an operation
// over them gets an error result.
const (
	maxKeySize   = 1 << 10
	maxValueSize = 1 << 20
)

// entryDomain starts every entry hash. It is the built-in store's, so the
// two compute the same digest for the same entries.
const entryDomain = "pbftnode/v1/kv-entry"

// snapshotMagic starts every snapshot. Entries follow in strictly
// increasing key order, each as uvarint(len k) || k || uvarint(len v) || v.
const snapshotMagic = "pbftnode-example/grpc-app/v1\n"

// sum256 is an incremental multiset hash: the sum modulo 2^256 of the
// SHA-256 entry hashes, limb 0 the least significant. Adding and removing
// an entry are O(1) and the order of updates does not matter.
type sum256 [4]uint64

func (s *sum256) add(h [32]byte) {
	var carry uint64
	for i := range 4 {
		s[i], carry = bits.Add64(s[i], binary.BigEndian.Uint64(h[24-8*i:]), carry)
	}
}

func (s *sum256) sub(h [32]byte) {
	var borrow uint64
	for i := range 4 {
		s[i], borrow = bits.Sub64(s[i], binary.BigEndian.Uint64(h[24-8*i:]), borrow)
	}
}

// bytes returns the sum as a big-endian 32-byte digest.
func (s *sum256) bytes() [32]byte {
	var out [32]byte
	for i := range 4 {
		binary.BigEndian.PutUint64(out[24-8*i:], s[i])
	}
	return out
}

// entryHash is SHA-256(entryDomain || uvarint(len k) || k || v).
func entryHash(k, v []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(entryDomain))
	h.Write(binary.AppendUvarint(nil, uint64(len(k))))
	h.Write(k)
	h.Write(v)
	return [32]byte(h.Sum(nil))
}

// kvState is the key-value state in memory: its entries, the sequence of
// the last batch it executed and the running sum of its entry hashes. It
// is not safe for concurrent use (the server locks around it).
type kvState struct {
	entries  map[string][]byte
	sequence uint64
	sum      sum256
}

func newKVState() *kvState { return &kvState{entries: make(map[string][]byte)} }

// result is a wire.KVResult before encoding.
type result struct {
	ok    bool
	value []byte
	err   string
}

// encode marshals the result deterministically, byte for byte as the
// built-in store encodes its results.
func (r result) encode() []byte {
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&wire.KVResult{Ok: r.ok, Value: r.value, Error: r.err})
	if err != nil {
		// KVResult holds a bool, bytes and a string set from Go
		// literals or stored bytes: marshalling cannot fail.
		panic(fmt.Sprintf("grpc-app: marshal KVResult: %v", err))
	}
	return out
}

// execute applies one encoded wire.KVOperation (hostile bytes) and returns
// its encoded wire.KVResult. Malformed and refused operations get a result
// saying so.
func (s *kvState) execute(payload []byte) []byte {
	var op wire.KVOperation
	if err := proto.Unmarshal(payload, &op); err != nil {
		return result{err: "malformed operation"}.encode()
	}
	switch o := op.Op.(type) {
	case *wire.KVOperation_Put:
		return s.put(o.Put.GetKey(), o.Put.GetValue()).encode()
	case *wire.KVOperation_Get:
		return s.get(o.Get.GetKey()).encode()
	case *wire.KVOperation_Delete:
		return s.delete(o.Delete.GetKey()).encode()
	case *wire.KVOperation_Cas:
		return s.compareAndSwap(o.Cas).encode()
	default:
		return result{err: "malformed operation: no operation set"}.encode()
	}
}

// query answers a read-only query: an encoded KVOperation holding a get.
func (s *kvState) query(payload []byte) []byte {
	var op wire.KVOperation
	if err := proto.Unmarshal(payload, &op); err != nil {
		return result{err: "malformed query"}.encode()
	}
	get, ok := op.Op.(*wire.KVOperation_Get)
	if !ok {
		return result{err: "query: only get is read-only"}.encode()
	}
	return s.get(get.Get.GetKey()).encode()
}

func (s *kvState) put(key, value []byte) result {
	if len(key) > maxKeySize {
		return result{err: "put: key too large"}
	}
	if len(value) > maxValueSize {
		return result{err: "put: value too large"}
	}
	s.set(key, value)
	return result{ok: true}
}

func (s *kvState) get(key []byte) result {
	if len(key) > maxKeySize {
		return result{err: "get: key too large"}
	}
	value, found := s.entries[string(key)]
	return result{ok: found, value: value}
}

func (s *kvState) delete(key []byte) result {
	if len(key) > maxKeySize {
		return result{err: "delete: key too large"}
	}
	if old, found := s.entries[string(key)]; found {
		s.sum.sub(entryHash(key, old))
		delete(s.entries, string(key))
	}
	return result{ok: true}
}

func (s *kvState) compareAndSwap(c *wire.KVCompareAndSwap) result {
	if len(c.GetKey()) > maxKeySize {
		return result{err: "cas: key too large"}
	}
	if c.GetOldAbsent() && len(c.GetOldValue()) > 0 {
		return result{err: "cas: old_value set together with old_absent"}
	}
	if len(c.GetOldValue()) > maxValueSize || len(c.GetNewValue()) > maxValueSize {
		return result{err: "cas: value too large"}
	}
	current, found := s.entries[string(c.GetKey())]
	matches := (c.GetOldAbsent() && !found) || (!c.GetOldAbsent() && found && bytes.Equal(current, c.GetOldValue()))
	if !matches {
		return result{ok: false, value: current}
	}
	s.set(c.GetKey(), c.GetNewValue())
	return result{ok: true}
}

// set stores a copy of value (the operation's buffer is not ours).
func (s *kvState) set(key, value []byte) {
	if old, found := s.entries[string(key)]; found {
		s.sum.sub(entryHash(key, old))
	}
	stored := append([]byte{}, value...)
	s.entries[string(key)] = stored
	s.sum.add(entryHash(key, stored))
}

// snapshot encodes every entry (see snapshotMagic).
func (s *kvState) snapshot() []byte {
	keys := make([]string, 0, len(s.entries))
	for k := range s.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := []byte(snapshotMagic)
	for _, k := range keys {
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		out = binary.AppendUvarint(out, uint64(len(s.entries[k])))
		out = append(out, s.entries[k]...)
	}
	return out
}

// parseSnapshot decodes and validates a snapshot (hostile bytes: it may
// come from another replica) into a fresh state at sequence. An empty
// snapshot at sequence 0 is the initial state.
func parseSnapshot(sequence uint64, snapshot []byte) (*kvState, error) {
	s := newKVState()
	s.sequence = sequence
	if len(snapshot) == 0 && sequence == 0 {
		return s, nil
	}
	rest, ok := bytes.CutPrefix(snapshot, []byte(snapshotMagic))
	if !ok {
		return nil, errors.New("not a grpc-app snapshot (bad magic)")
	}
	var prev []byte
	for n := 0; len(rest) > 0; n++ {
		key, r, err := readField(rest, maxKeySize)
		if err != nil {
			return nil, fmt.Errorf("entry %d key: %w", n, err)
		}
		value, r, err := readField(r, maxValueSize)
		if err != nil {
			return nil, fmt.Errorf("entry %d value: %w", n, err)
		}
		if n > 0 && bytes.Compare(prev, key) >= 0 {
			return nil, fmt.Errorf("entry %d: keys not strictly increasing", n)
		}
		prev, rest = key, r
		s.set(key, value)
	}
	return s, nil
}

// readField reads uvarint(n) || n bytes with n <= limit.
func readField(b []byte, limit int) (field, rest []byte, err error) {
	n, size := binary.Uvarint(b)
	if size <= 0 {
		return nil, nil, errors.New("bad length prefix")
	}
	if n > uint64(limit) {
		return nil, nil, fmt.Errorf("length %d over limit %d", n, limit)
	}
	b = b[size:]
	if uint64(len(b)) < n {
		return nil, nil, fmt.Errorf("length %d but only %d bytes left", n, len(b))
	}
	return b[:n], b[n:], nil
}
