package execution

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// This file is the surface of KV for an application built on it (package
// ledger): the application keeps its state as KV entries, so the KV's
// digest, batches, read cache, snapshots and state transfer are its own,
// and it forwards the Application, BatchApplication and
// TransferableApplication methods to the KV. Get, Set and Delete are
// KV's own lookup, set and remove: they keep the digest accumulator and
// the read cache exactly as KV's operations do.

// errOutsideBatch is returned by Set and Delete outside a batch.
var errOutsideBatch = errors.New("kv: write outside a batch")

// Get returns the value of key, seeing the open batch's writes first, and
// whether key is present. The value must not be modified. During a batch
// a storage failure reads as absent and fails the batch (Stage returns an
// error), so a result computed from such a read is never committed.
func (kv *KV) Get(key []byte) (value []byte, found bool) {
	value, found, _ = kv.lookup(key, false)
	return value, found
}

// Set sets key to value in the open batch (Set copies both). It fails,
// changing nothing, outside a batch or when key or value is over
// MaxKeySize or MaxValueSize.
func (kv *KV) Set(key, value []byte) error {
	if err := kv.checkWrite(key); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("kv: set: value of %d bytes over limit %d", len(value), MaxValueSize)
	}
	kv.set(key, value)
	return nil
}

// Delete removes key in the open batch (nothing when absent). It fails,
// changing nothing, outside a batch or when key is over MaxKeySize.
func (kv *KV) Delete(key []byte) error {
	if err := kv.checkWrite(key); err != nil {
		return err
	}
	kv.remove(key)
	return nil
}

func (kv *KV) checkWrite(key []byte) error {
	if !kv.inBatch {
		return errOutsideBatch
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("kv: key of %d bytes over limit %d", len(key), MaxKeySize)
	}
	return nil
}

// Atomically runs execute, which may call Get, Set and Delete, and
// returns its result. Inside an open batch it just runs it (the batch
// commits its writes). Outside one it runs it as a batch of its own and
// commits that batch in one unsynced write, as Execute does for a lone
// operation; if the write fails, nothing changes and err is set.
func (kv *KV) Atomically(execute func() []byte) (result []byte, err error) {
	if kv.inBatch {
		return execute(), nil
	}
	kv.Begin()
	result = execute()
	b := new(leveldb.Batch)
	if err := kv.Stage(b); err != nil {
		kv.Rollback()
		return nil, err
	}
	if err := kv.db.Write(b, &opt.WriteOptions{Sync: false}); err != nil {
		kv.Rollback()
		return nil, fmt.Errorf("kv: write: %w", err)
	}
	kv.Commit()
	return result, nil
}

// Scan calls visit for every committed entry whose key starts with
// prefix, in key order (the key without the KV's storage prefix), reading
// one consistent database snapshot; it stops at the first error visit
// returns and returns it. key and value are valid during the call only.
// It is O(entries) and not allowed during a batch: it is for checks
// (ledger invariants), not for operations.
func (kv *KV) Scan(prefix []byte, visit func(key, value []byte) error) error {
	if kv.inBatch {
		return errors.New("kv: scan during a batch")
	}
	snap, err := kv.db.GetSnapshot()
	if err != nil {
		return fmt.Errorf("kv: scan: %w", err)
	}
	defer snap.Release()
	iter := snap.NewIterator(util.BytesPrefix(dataKey(prefix)), nil)
	defer iter.Release()
	for iter.Next() {
		if err := visit(iter.Key()[len(kvDataPrefix):], iter.Value()); err != nil {
			return err
		}
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("kv: scan: %w", err)
	}
	return nil
}

// EntryKey returns the KV key of a stored key (a full database key, as
// TransferKey and CheckTransferEntry see it) and whether it is a KV
// entry, so an application built on a KV can validate transferred
// entries by its own keys.
func EntryKey(stored []byte) (key []byte, ok bool) {
	return bytes.CutPrefix(stored, []byte(kvDataPrefix))
}

// DropCache empties the KV's read cache. The executor calls it before
// state transfer writes the application's entries to the database
// directly; an application built on a KV must forward it.
func (kv *KV) DropCache() { kv.cache.reset() }

// CachedCommittedValue implements CommittedValueCache: key's committed
// value (key is a database key under a/k/) if the read cache holds it.
// The executor's rollback records use it; the returned value must not be
// modified.
func (kv *KV) CachedCommittedValue(key []byte) (value []byte, present, ok bool) {
	if !bytes.HasPrefix(key, []byte(kvDataPrefix)) {
		return nil, false, false
	}
	e := kv.cache.lookup(key[len(kvDataPrefix):])
	if e == nil {
		return nil, false, false
	}
	return e.value, e.present, true
}
