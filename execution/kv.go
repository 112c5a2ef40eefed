package execution

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
	"google.golang.org/protobuf/proto"
)

// Limits of the key-value application. Operations over them get an error
// result.
const (
	MaxKeySize   = 1 << 10
	MaxValueSize = 1 << 20
)

const (
	kvDataPrefix   = storage.PrefixApp + "k/"
	kvDigestKey    = storage.PrefixApp + "m/digest"
	kvEntryDomain  = "pbftnode/v1/kv-entry"
	kvInternalFail = "internal storage error"
)

// KV is the built-in key-value application, stored in goleveldb under
// storage.PrefixApp. Operations are encoded wire.KVOperation messages (put,
// get, delete, compare-and-swap); results are deterministically marshalled
// wire.KVResult messages. A malformed operation gets a KVResult with Error
// set; Execute never panics and never fails.
//
// KV implements BatchApplication. Outside a batch, Execute commits each
// operation on its own (unsynced) write; a storage failure there yields a
// result with Error "internal storage error", which is not deterministic
// across replicas, so replicas must drive KV through an Executor, which
// turns storage failures into errors instead.
//
// KV is not safe for concurrent use.
type KV struct {
	db *leveldb.DB
	// acc is the digest accumulator of the committed state.
	acc adHash
	// cache holds recently used entries of the committed state (see
	// kvCache for the contract).
	cache *kvCache

	// Batch state, valid while inBatch. order lists the overlay's keys in
	// the order of their first write, so Stage and Commit do not depend
	// on map iteration order. The overlay map and order are reused
	// across batches.
	inBatch  bool
	overlay  map[string]overlayValue
	order    []string
	batchAcc adHash
	batchErr error
	// keyBuf is scratch space for database keys.
	keyBuf []byte
}

// overlayValue is a buffered write: a new value (with its entry hash) or
// a deletion.
type overlayValue struct {
	value   []byte
	hash    [32]byte
	deleted bool
}

// maxKeptOverlay bounds the overlay map size KV keeps for reuse; after a
// batch with more keys it allocates a fresh map (a Go map never shrinks).
const maxKeptOverlay = 4096

// NewKV opens the key-value application stored in db and loads its digest
// accumulator (recomputing it when the database holds none yet).
func NewKV(db *leveldb.DB) (*KV, error) {
	kv := &KV{db: db, cache: newKVCache()}
	stored, err := db.Get([]byte(kvDigestKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		acc, err := kv.recompute()
		if err != nil {
			return nil, fmt.Errorf("kv: initial digest: %w", err)
		}
		kv.acc = acc
	case err != nil:
		return nil, fmt.Errorf("kv: load digest: %w", err)
	case len(stored) != 32:
		return nil, fmt.Errorf("kv: load digest: corrupt value of length %d, want 32", len(stored))
	default:
		kv.acc = adHashFromBytes([32]byte(stored))
	}
	return kv, nil
}

// Digest returns the AdHash of all entries: the sum modulo 2^256 of
// SHA-256("pbftnode/v1/kv-entry" || uvarint(len k) || k || v). During a
// batch it includes the batch's executed operations.
func (kv *KV) Digest() [32]byte {
	if kv.inBatch {
		return kv.batchAcc.bytes()
	}
	return kv.acc.bytes()
}

// RecomputeDigest recomputes the digest from scratch by reading every entry
// (O(state); for verification, not for the normal case). Not allowed
// during a batch.
func (kv *KV) RecomputeDigest() ([32]byte, error) {
	if kv.inBatch {
		return [32]byte{}, errors.New("kv: recompute digest during a batch")
	}
	acc, err := kv.recompute()
	if err != nil {
		return [32]byte{}, err
	}
	return acc.bytes(), nil
}

func (kv *KV) recompute() (adHash, error) {
	var acc adHash
	iter := kv.db.NewIterator(util.BytesPrefix([]byte(kvDataPrefix)), nil)
	defer iter.Release()
	for iter.Next() {
		acc.add(entryHash(kvEntryDomain, iter.Key()[len(kvDataPrefix):], iter.Value()))
	}
	if err := iter.Error(); err != nil {
		return adHash{}, fmt.Errorf("kv: scan entries: %w", err)
	}
	return acc, nil
}

// Begin starts a batch (see BatchApplication). It panics if a batch is
// already open: that is a broken invariant of the caller.
func (kv *KV) Begin() {
	if kv.inBatch {
		panic("execution: KV.Begin called during a batch")
	}
	kv.inBatch = true
	if kv.overlay == nil {
		kv.overlay = make(map[string]overlayValue)
	}
	kv.batchAcc = kv.acc
	kv.batchErr = nil
}

// Stage adds the batch's writes and the new digest accumulator to b. It
// fails if a storage read failed during the batch.
func (kv *KV) Stage(b Batch) error {
	if !kv.inBatch {
		return errors.New("kv: stage outside a batch")
	}
	if kv.batchErr != nil {
		return fmt.Errorf("kv: batch aborted: %w", kv.batchErr)
	}
	for _, key := range kv.order {
		w := kv.overlay[key]
		kv.keyBuf = append(append(kv.keyBuf[:0], kvDataPrefix...), key...)
		if w.deleted {
			b.Delete(kv.keyBuf)
		} else {
			b.Put(kv.keyBuf, w.value)
		}
	}
	acc := kv.batchAcc.bytes()
	b.Put([]byte(kvDigestKey), acc[:])
	return nil
}

// Commit makes the staged batch the committed state; the caller has
// written the batch passed to Stage. The batch's writes enter the read
// cache only now.
func (kv *KV) Commit() {
	if !kv.inBatch {
		panic("execution: KV.Commit called outside a batch")
	}
	for _, key := range kv.order {
		w := kv.overlay[key]
		kv.cache.store(key, w.value, !w.deleted, w.hash, !w.deleted)
	}
	kv.acc = kv.batchAcc
	kv.endBatch()
}

// Rollback discards the open batch, if any. The read cache, which holds
// committed state only, is unaffected.
func (kv *KV) Rollback() { kv.endBatch() }

func (kv *KV) endBatch() {
	kv.inBatch = false
	if len(kv.order) > maxKeptOverlay {
		kv.overlay, kv.order = nil, nil
	} else {
		clear(kv.overlay)
		clear(kv.order)
		kv.order = kv.order[:0]
	}
	kv.batchAcc = adHash{}
	kv.batchErr = nil
}

// Execute applies one encoded wire.KVOperation and returns the encoded
// wire.KVResult.
func (kv *KV) Execute(op []byte) []byte {
	if kv.inBatch {
		return kv.execute(op).encode()
	}
	result, err := kv.Atomically(func() []byte { return kv.execute(op).encode() })
	if err != nil {
		return kvResult{err: kvInternalFail}.encode()
	}
	return result
}

func (kv *KV) execute(op []byte) kvResult {
	if d, ok := decodeSimpleOp(op); ok {
		switch d.field {
		case opPutField:
			return kv.put(d.key, d.value)
		case opGetField:
			return kv.read(d.key)
		default:
			return kv.delete(d.key)
		}
	}
	var decoded wire.KVOperation
	if err := proto.Unmarshal(op, &decoded); err != nil {
		return kvResult{err: "malformed operation"}
	}
	switch o := decoded.Op.(type) {
	case *wire.KVOperation_Put:
		return kv.put(o.Put.GetKey(), o.Put.GetValue())
	case *wire.KVOperation_Get:
		return kv.read(o.Get.GetKey())
	case *wire.KVOperation_Delete:
		return kv.delete(o.Delete.GetKey())
	case *wire.KVOperation_Cas:
		return kv.compareAndSwap(o.Cas)
	default:
		return kvResult{err: "malformed operation: no operation set"}
	}
}

func (kv *KV) put(key, value []byte) kvResult {
	if msg := checkKey(key); msg != "" {
		return kvResult{err: "put: " + msg}
	}
	if len(value) > MaxValueSize {
		return kvResult{err: "put: value too large"}
	}
	kv.set(key, value)
	return kvResult{ok: true}
}

func (kv *KV) read(key []byte) kvResult {
	if msg := checkKey(key); msg != "" {
		return kvResult{err: "get: " + msg}
	}
	value, found, _ := kv.lookup(key, false)
	return kvResult{ok: found, value: value}
}

func (kv *KV) delete(key []byte) kvResult {
	if msg := checkKey(key); msg != "" {
		return kvResult{err: "delete: " + msg}
	}
	kv.remove(key)
	return kvResult{ok: true}
}

func (kv *KV) compareAndSwap(c *wire.KVCompareAndSwap) kvResult {
	if msg := checkKey(c.GetKey()); msg != "" {
		return kvResult{err: "cas: " + msg}
	}
	if c.GetOldAbsent() && len(c.GetOldValue()) > 0 {
		return kvResult{err: "cas: old_value set together with old_absent"}
	}
	if len(c.GetOldValue()) > MaxValueSize || len(c.GetNewValue()) > MaxValueSize {
		return kvResult{err: "cas: value too large"}
	}
	current, found, _ := kv.lookup(c.GetKey(), false)
	matches := (c.GetOldAbsent() && !found) || (!c.GetOldAbsent() && found && bytes.Equal(current, c.GetOldValue()))
	if !matches {
		return kvResult{ok: false, value: current}
	}
	kv.set(c.GetKey(), c.GetNewValue())
	return kvResult{ok: true}
}

func checkKey(key []byte) string {
	if len(key) > MaxKeySize {
		return "key too large"
	}
	return ""
}

// lookup reads key, seeing the batch's own writes first, then the read
// cache, then the database (filling the cache). When found and withHash,
// hash is the entry hash of key and value. The value must not be
// modified. A storage failure poisons the batch (Stage fails) and reads as
// absent.
func (kv *KV) lookup(key []byte, withHash bool) (value []byte, found bool, hash [32]byte) {
	if w, ok := kv.overlay[string(key)]; ok {
		if w.deleted {
			return nil, false, hash
		}
		return w.value, true, w.hash
	}
	if e := kv.cache.lookup(key); e != nil {
		if !e.present {
			return nil, false, hash
		}
		if withHash && !e.hashed {
			e.hash, e.hashed = entryHash(kvEntryDomain, key, e.value), true
		}
		return e.value, true, e.hash
	}
	kv.keyBuf = append(append(kv.keyBuf[:0], kvDataPrefix...), key...)
	value, err := kv.db.Get(kv.keyBuf, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		kv.cache.store(string(key), nil, false, hash, false)
		return nil, false, hash
	}
	if err != nil {
		if kv.batchErr == nil {
			kv.batchErr = fmt.Errorf("kv: read %x: %w", key, err)
		}
		return nil, false, hash
	}
	if withHash {
		hash = entryHash(kvEntryDomain, key, value)
	}
	// DB.Get returns its own copy, so the cache may keep value.
	kv.cache.store(string(key), value, true, hash, withHash)
	return value, true, hash
}

func (kv *KV) set(key, value []byte) {
	if _, found, oldHash := kv.lookup(key, true); found {
		kv.batchAcc.sub(oldHash)
	}
	// Own the bytes: the operation buffer belongs to the caller.
	stored := bytes.Clone(value)
	if stored == nil {
		stored = []byte{}
	}
	hash := entryHash(kvEntryDomain, key, stored)
	kv.batchAcc.add(hash)
	kv.write(key, overlayValue{value: stored, hash: hash})
}

func (kv *KV) remove(key []byte) {
	_, found, oldHash := kv.lookup(key, true)
	if !found {
		return
	}
	kv.batchAcc.sub(oldHash)
	kv.write(key, overlayValue{deleted: true})
}

// write buffers w as the batch's write of key.
func (kv *KV) write(key []byte, w overlayValue) {
	if _, ok := kv.overlay[string(key)]; ok {
		kv.overlay[string(key)] = w
		return
	}
	k := string(key)
	kv.overlay[k] = w
	kv.order = append(kv.order, k)
}

func dataKey(key []byte) []byte {
	out := make([]byte, 0, len(kvDataPrefix)+len(key))
	out = append(out, kvDataPrefix...)
	return append(out, key...)
}

// TransferKey reports whether the stored key belongs to the state that
// checkpoint state transfer copies: the entries under a/k/. The digest
// accumulator is derived and left out (see TransferableApplication).
func (kv *KV) TransferKey(key []byte) bool {
	return bytes.HasPrefix(key, []byte(kvDataPrefix))
}

// CheckTransferEntry validates an entry received from a peer during state
// transfer: key must be a/k/<k> with k at most MaxKeySize bytes, value at
// most MaxValueSize bytes.
func (kv *KV) CheckTransferEntry(key, value []byte) error {
	k, ok := bytes.CutPrefix(key, []byte(kvDataPrefix))
	if !ok {
		return fmt.Errorf("kv: transfer key %q is not a kv entry (want prefix %q)", truncateKey(key), kvDataPrefix)
	}
	if len(k) > MaxKeySize {
		return fmt.Errorf("kv: transfer key of %d bytes over limit %d", len(k), MaxKeySize)
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("kv: transfer value of %d bytes over limit %d", len(value), MaxValueSize)
	}
	return nil
}

// Reload reloads the KV after state transfer rewrote its entries directly
// in the database: it recomputes the digest accumulator from the entries
// (never trusting a stored one) and stores it. Not allowed during a batch.
func (kv *KV) Reload() error {
	if kv.inBatch {
		return errors.New("kv: reload during a batch")
	}
	kv.cache.reset()
	acc, err := kv.recompute()
	if err != nil {
		return fmt.Errorf("kv: reload: %w", err)
	}
	digest := acc.bytes()
	if err := kv.db.Put([]byte(kvDigestKey), digest[:], &opt.WriteOptions{Sync: false}); err != nil {
		return fmt.Errorf("kv: reload: store digest: %w", err)
	}
	kv.acc = acc
	return nil
}

// truncateKey shortens a hostile key for error messages.
func truncateKey(key []byte) []byte {
	const limit = 64
	if len(key) > limit {
		return key[:limit]
	}
	return key
}
