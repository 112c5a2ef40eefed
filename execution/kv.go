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

	// Batch state, valid while inBatch.
	inBatch  bool
	overlay  map[string]overlayValue
	batchAcc adHash
	batchErr error
}

// overlayValue is a buffered write: a new value or a deletion.
type overlayValue struct {
	value   []byte
	deleted bool
}

// NewKV opens the key-value application stored in db and loads its digest
// accumulator (recomputing it when the database holds none yet).
func NewKV(db *leveldb.DB) (*KV, error) {
	kv := &KV{db: db}
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
	kv.overlay = make(map[string]overlayValue)
	kv.batchAcc = kv.acc
	kv.batchErr = nil
}

// Stage adds the batch's writes and the new digest accumulator to b. It
// fails if a storage read failed during the batch.
func (kv *KV) Stage(b *leveldb.Batch) error {
	if !kv.inBatch {
		return errors.New("kv: stage outside a batch")
	}
	if kv.batchErr != nil {
		return fmt.Errorf("kv: batch aborted: %w", kv.batchErr)
	}
	for key, w := range kv.overlay {
		if w.deleted {
			b.Delete(dataKey([]byte(key)))
		} else {
			b.Put(dataKey([]byte(key)), w.value)
		}
	}
	acc := kv.batchAcc.bytes()
	b.Put([]byte(kvDigestKey), acc[:])
	return nil
}

// Commit makes the staged batch the committed state; the caller has
// written the batch passed to Stage.
func (kv *KV) Commit() {
	if !kv.inBatch {
		panic("execution: KV.Commit called outside a batch")
	}
	kv.acc = kv.batchAcc
	kv.endBatch()
}

// Rollback discards the open batch, if any.
func (kv *KV) Rollback() { kv.endBatch() }

func (kv *KV) endBatch() {
	kv.inBatch = false
	kv.overlay = nil
	kv.batchAcc = adHash{}
	kv.batchErr = nil
}

// Execute applies one encoded wire.KVOperation and returns the encoded
// wire.KVResult.
func (kv *KV) Execute(op []byte) []byte {
	if kv.inBatch {
		return marshalResult(kv.execute(op))
	}
	kv.Begin()
	result := kv.execute(op)
	b := new(leveldb.Batch)
	if err := kv.Stage(b); err != nil {
		kv.Rollback()
		return marshalResult(&wire.KVResult{Error: kvInternalFail})
	}
	if err := kv.db.Write(b, &opt.WriteOptions{Sync: false}); err != nil {
		kv.Rollback()
		return marshalResult(&wire.KVResult{Error: kvInternalFail})
	}
	kv.Commit()
	return marshalResult(result)
}

func (kv *KV) execute(op []byte) *wire.KVResult {
	var decoded wire.KVOperation
	if err := proto.Unmarshal(op, &decoded); err != nil {
		return &wire.KVResult{Error: "malformed operation"}
	}
	switch o := decoded.Op.(type) {
	case *wire.KVOperation_Put:
		if msg := checkKey(o.Put.GetKey()); msg != "" {
			return &wire.KVResult{Error: "put: " + msg}
		}
		if len(o.Put.GetValue()) > MaxValueSize {
			return &wire.KVResult{Error: "put: value too large"}
		}
		kv.set(o.Put.GetKey(), o.Put.GetValue())
		return &wire.KVResult{Ok: true}
	case *wire.KVOperation_Get:
		if msg := checkKey(o.Get.GetKey()); msg != "" {
			return &wire.KVResult{Error: "get: " + msg}
		}
		value, found := kv.get(o.Get.GetKey())
		return &wire.KVResult{Ok: found, Value: value}
	case *wire.KVOperation_Delete:
		if msg := checkKey(o.Delete.GetKey()); msg != "" {
			return &wire.KVResult{Error: "delete: " + msg}
		}
		kv.remove(o.Delete.GetKey())
		return &wire.KVResult{Ok: true}
	case *wire.KVOperation_Cas:
		return kv.compareAndSwap(o.Cas)
	default:
		return &wire.KVResult{Error: "malformed operation: no operation set"}
	}
}

func (kv *KV) compareAndSwap(c *wire.KVCompareAndSwap) *wire.KVResult {
	if msg := checkKey(c.GetKey()); msg != "" {
		return &wire.KVResult{Error: "cas: " + msg}
	}
	if c.GetOldAbsent() && len(c.GetOldValue()) > 0 {
		return &wire.KVResult{Error: "cas: old_value set together with old_absent"}
	}
	if len(c.GetOldValue()) > MaxValueSize || len(c.GetNewValue()) > MaxValueSize {
		return &wire.KVResult{Error: "cas: value too large"}
	}
	current, found := kv.get(c.GetKey())
	matches := (c.GetOldAbsent() && !found) || (!c.GetOldAbsent() && found && bytes.Equal(current, c.GetOldValue()))
	if !matches {
		return &wire.KVResult{Ok: false, Value: current}
	}
	kv.set(c.GetKey(), c.GetNewValue())
	return &wire.KVResult{Ok: true}
}

func checkKey(key []byte) string {
	if len(key) > MaxKeySize {
		return "key too large"
	}
	return ""
}

// get reads key, seeing the batch's own writes first. A storage failure
// poisons the batch (Stage fails) and reads as absent.
func (kv *KV) get(key []byte) ([]byte, bool) {
	if w, ok := kv.overlay[string(key)]; ok {
		if w.deleted {
			return nil, false
		}
		return w.value, true
	}
	value, err := kv.db.Get(dataKey(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		if kv.batchErr == nil {
			kv.batchErr = fmt.Errorf("kv: read %x: %w", key, err)
		}
		return nil, false
	}
	return value, true
}

func (kv *KV) set(key, value []byte) {
	if old, found := kv.get(key); found {
		kv.batchAcc.sub(entryHash(kvEntryDomain, key, old))
	}
	// Own the bytes: the operation buffer belongs to the caller.
	stored := bytes.Clone(value)
	if stored == nil {
		stored = []byte{}
	}
	kv.batchAcc.add(entryHash(kvEntryDomain, key, stored))
	kv.overlay[string(key)] = overlayValue{value: stored}
}

func (kv *KV) remove(key []byte) {
	old, found := kv.get(key)
	if !found {
		return
	}
	kv.batchAcc.sub(entryHash(kvEntryDomain, key, old))
	kv.overlay[string(key)] = overlayValue{deleted: true}
}

func dataKey(key []byte) []byte {
	out := make([]byte, 0, len(kvDataPrefix)+len(key))
	out = append(out, kvDataPrefix...)
	return append(out, key...)
}

// marshalResult encodes r deterministically. Results only carry fixed
// ASCII error strings, so marshalling cannot fail.
func marshalResult(r *wire.KVResult) []byte {
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("execution: marshal KVResult: %v", err))
	}
	return out
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
