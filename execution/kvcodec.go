package execution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
	"google.golang.org/protobuf/proto"
)

// kvSnapshotMagic starts every KV snapshot. Entries follow in strictly
// increasing key order, each as uvarint(len k) || k || uvarint(len v) || v.
const kvSnapshotMagic = "pbftnode/v1/kv-snapshot\n"

func encodeOperation(op *wire.KVOperation) []byte {
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(op)
	if err != nil {
		// KVOperation holds only bytes and bools; marshalling cannot fail.
		panic(fmt.Sprintf("execution: marshal KVOperation: %v", err))
	}
	return out
}

// EncodePut encodes a put of value under key.
func EncodePut(key, value []byte) []byte {
	return encodeSimpleOp(opPutField, key, value)
}

// EncodeGet encodes a read of key.
func EncodeGet(key []byte) []byte {
	return encodeSimpleOp(opGetField, key, nil)
}

// EncodeDelete encodes a deletion of key.
func EncodeDelete(key []byte) []byte {
	return encodeSimpleOp(opDeleteField, key, nil)
}

// EncodeCAS encodes a compare-and-swap: set key to newValue if its current
// value equals old, or, when oldAbsent is true, if key is absent (old must
// then be empty).
func EncodeCAS(key, old []byte, oldAbsent bool, newValue []byte) []byte {
	return encodeOperation(&wire.KVOperation{Op: &wire.KVOperation_Cas{Cas: &wire.KVCompareAndSwap{
		Key: key, OldValue: old, OldAbsent: oldAbsent, NewValue: newValue,
	}}})
}

// DecodeResult decodes a result returned by KV.Execute.
func DecodeResult(b []byte) (*wire.KVResult, error) {
	if r, ok := decodeResultFast(b); ok {
		return r, nil
	}
	var r wire.KVResult
	if err := proto.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode kv result: %w", err)
	}
	return &r, nil
}

// Snapshot returns every entry of the committed state in key order (see
// kvSnapshotMagic for the format). It reads a consistent goleveldb
// snapshot. Not allowed during a batch.
func (kv *KV) Snapshot() ([]byte, error) {
	if kv.inBatch {
		return nil, errors.New("kv: snapshot during a batch")
	}
	snap, err := kv.db.GetSnapshot()
	if err != nil {
		return nil, fmt.Errorf("kv: snapshot: %w", err)
	}
	defer snap.Release()
	out := []byte(kvSnapshotMagic)
	iter := snap.NewIterator(util.BytesPrefix([]byte(kvDataPrefix)), nil)
	defer iter.Release()
	for iter.Next() {
		key := iter.Key()[len(kvDataPrefix):]
		out = binary.AppendUvarint(out, uint64(len(key)))
		out = append(out, key...)
		out = binary.AppendUvarint(out, uint64(len(iter.Value())))
		out = append(out, iter.Value()...)
	}
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("kv: snapshot: %w", err)
	}
	return out, nil
}

type kvEntry struct{ key, value []byte }

// parseSnapshot validates a snapshot (it may come from a faulty peer) and
// returns its entries and their accumulator.
func parseSnapshot(snapshot []byte) ([]kvEntry, adHash, error) {
	rest, ok := bytes.CutPrefix(snapshot, []byte(kvSnapshotMagic))
	if !ok {
		return nil, adHash{}, errors.New("kv: restore: not a kv snapshot (bad magic)")
	}
	var (
		entries []kvEntry
		acc     adHash
		prev    []byte
	)
	for len(rest) > 0 {
		key, r, err := readChunk(rest, MaxKeySize)
		if err != nil {
			return nil, adHash{}, fmt.Errorf("kv: restore: entry %d key: %w", len(entries), err)
		}
		value, r, err := readChunk(r, MaxValueSize)
		if err != nil {
			return nil, adHash{}, fmt.Errorf("kv: restore: entry %d value: %w", len(entries), err)
		}
		rest = r
		if len(entries) > 0 && bytes.Compare(prev, key) >= 0 {
			return nil, adHash{}, fmt.Errorf("kv: restore: entry %d: keys not strictly increasing", len(entries))
		}
		prev = key
		entries = append(entries, kvEntry{key: key, value: value})
		acc.add(entryHash(kvEntryDomain, key, value))
	}
	return entries, acc, nil
}

// readChunk reads uvarint(n) || n bytes with n <= limit.
func readChunk(b []byte, limit int) (chunk, rest []byte, err error) {
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

// Restore replaces the whole state with snapshot in one atomic write, after
// validating it completely; on any error the state is unchanged. It then
// checks that the digest recomputed from disk equals the digest computed
// from the snapshot. Not allowed during a batch.
func (kv *KV) Restore(snapshot []byte) error {
	if kv.inBatch {
		return errors.New("kv: restore during a batch")
	}
	entries, acc, err := parseSnapshot(snapshot)
	if err != nil {
		return err
	}
	// The state changes under the read cache from here on, whatever the
	// outcome.
	kv.cache.reset()
	b := new(leveldb.Batch)
	iter := kv.db.NewIterator(util.BytesPrefix([]byte(storage.PrefixApp)), nil)
	for iter.Next() {
		b.Delete(bytes.Clone(iter.Key()))
	}
	iter.Release()
	if err := iter.Error(); err != nil {
		return fmt.Errorf("kv: restore: scan old state: %w", err)
	}
	for _, e := range entries {
		b.Put(dataKey(e.key), e.value)
	}
	digest := acc.bytes()
	b.Put([]byte(kvDigestKey), digest[:])
	if err := kv.db.Write(b, &opt.WriteOptions{Sync: false}); err != nil {
		return fmt.Errorf("kv: restore: write: %w", err)
	}
	kv.acc = acc
	recomputed, err := kv.recompute()
	if err != nil {
		return fmt.Errorf("kv: restore: verify: %w", err)
	}
	// Trust the disk from here on, whatever the outcome.
	kv.acc = recomputed
	if recomputed != acc {
		return fmt.Errorf("kv: restore: digest from disk %x differs from snapshot digest %x", recomputed.bytes(), digest)
	}
	return nil
}
