package execution

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// A tagged restore survives a crash. RestoreBeginTagged records a tag (the
// caller's name for the state it fetches: statetransfer uses the certified
// sequence and digest) and every RestoreChunk records, in the same atomic
// write as its entries, the tag and the last key written. After a crash,
// NewExecutor finds the transfer marker and that record and keeps the
// partial state instead of wiping it; RestoreResume with the same tag
// continues the restore from the key after the last one written. Any other
// tag, RestoreBegin or RestoreAbort wipes it. The record is under the
// executor's prefix but is never transferred (it is not a transfer key:
// StateSnapshot.Chunk skips it and RestoreChunk refuses it from a peer),
// and every wipe deletes it. The final digest check (RestoreFinishExpect)
// covers what was kept exactly as what was fetched in one go.

// restoreProgressKey holds a tagged restore's progress.
const restoreProgressKey = storage.PrefixExecutor + "restore-progress"

// maxRestoreTag bounds a restore tag.
const maxRestoreTag = 256

// RestoreBeginTagged is RestoreBegin that makes the restore resumable
// after a crash under tag (1 to 256 bytes; see RestoreResume).
func (e *Executor) RestoreBeginTagged(tag []byte) error {
	e.settle()
	if len(tag) == 0 || len(tag) > maxRestoreTag {
		return fmt.Errorf("executor: restore begin: tag of %d bytes, want 1..%d", len(tag), maxRestoreTag)
	}
	if err := e.RestoreBegin(); err != nil {
		return err
	}
	e.restore.tag = bytes.Clone(tag)
	if err := e.ldb.Put([]byte(restoreProgressKey), encodeRestoreProgress(tag, nil), &opt.WriteOptions{Sync: e.db.Sync()}); err != nil {
		err = fmt.Errorf("executor: restore begin: record progress: %w", err)
		e.restore.failed = err
		return err
	}
	return nil
}

// RestoreResume continues a tagged restore that a crash interrupted (see
// NewExecutor) if its tag is tag: it returns the key to ask the snapshot
// for next (nil when no entry was written yet) and true, and the restore
// goes on with RestoreChunk. Otherwise it returns false and changes
// nothing (the caller starts over with RestoreBegin or
// RestoreBeginTagged, which wipe the partial state).
func (e *Executor) RestoreResume(tag []byte) (startKey []byte, ok bool) {
	e.settle()
	r := e.restore
	if r == nil || !r.recovered || r.failed != nil || !bytes.Equal(r.tag, tag) {
		return nil, false
	}
	r.recovered = false
	if r.lastKey == nil {
		return nil, true
	}
	// The least key above the last one written.
	return append(bytes.Clone(r.lastKey), 0), true
}

func encodeRestoreProgress(tag, lastKey []byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(tag)))
	b = append(b, tag...)
	return append(b, lastKey...)
}

func decodeRestoreProgress(b []byte) (tag, lastKey []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxRestoreTag || uint64(len(b)-k) < n {
		return nil, nil, errors.New("corrupt restore progress record")
	}
	tag = b[k : k+int(n)]
	if rest := b[k+int(n):]; len(rest) > 0 {
		lastKey = rest
	}
	return bytes.Clone(tag), bytes.Clone(lastKey), nil
}

// recoverTaggedRestore keeps the partial state of a tagged restore a crash
// interrupted: it reports whether it found one (then e.restore holds it,
// marked recovered, and the executor's state is empty until the restore
// finishes).
func (e *Executor) recoverTaggedRestore() (bool, error) {
	rec, err := e.ldb.Get([]byte(restoreProgressKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("executor: read restore progress: %w", err)
	}
	tag, lastKey, err := decodeRestoreProgress(rec)
	if err != nil {
		e.logger.Warn("executor: ignoring the interrupted restore's progress", "err", err)
		return false, nil
	}
	r := &restoreState{lastKey: lastKey, tag: tag, recovered: true}
	last, err := e.ldb.Get([]byte(executorLastKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return false, fmt.Errorf("executor: read restored last executed: %w", err)
	case len(last) == 8:
		r.lastExecuted = binary.BigEndian.Uint64(last)
	default:
		return false, nil // checked when written; wipe rather than trust it
	}
	e.resetState()
	e.restore = r
	e.logger.Info("executor: keeping an interrupted state transfer's partial state to resume it", "last_key", truncateKey(lastKey))
	return true, nil
}
