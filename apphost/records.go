package apphost

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// loadRecords loads the recorded state and the manifest and checks that
// the journal holds exactly the batches after the snapshot up to the
// recorded one.
func (h *Host) loadRecords() error {
	h.manifest, h.recorded, h.hasRecorded, h.journalBytes = manifest{}, app.State{}, false, 0
	h.inSync, h.pending = false, nil
	value, err := h.ldb.Get([]byte(recordedKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return fmt.Errorf("load recorded state: %w", err)
	default:
		if h.recorded, err = decodeState(value); err != nil {
			return fmt.Errorf("load recorded state: %w", err)
		}
		h.hasRecorded = true
	}
	if h.manifest, err = h.loadManifest(); err != nil {
		return err
	}
	end, size, err := h.scanJournal(h.manifest.state.Sequence)
	if err != nil {
		return err
	}
	switch {
	case !h.hasRecorded && (end > 0 || h.manifest.state.Sequence > 0):
		return fmt.Errorf("snapshot or journal up to sequence %d without a recorded state: %w", end, errCorruptRecord)
	case h.hasRecorded && end != h.recorded.Sequence:
		return fmt.Errorf("journal ends at sequence %d, recorded state at %d: %w", end, h.recorded.Sequence, errCorruptRecord)
	}
	h.journalBytes = size
	h.digest = hostDigest(h.recorded)
	return nil
}

// loadManifest reads the stored manifest (zero when none).
func (h *Host) loadManifest() (manifest, error) {
	value, err := h.ldb.Get([]byte(manifestKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return manifest{}, nil
	case err != nil:
		return manifest{}, fmt.Errorf("load manifest: %w", err)
	}
	m, err := decodeManifest(value)
	if err != nil {
		return manifest{}, fmt.Errorf("load manifest: %w", err)
	}
	return m, nil
}

// scanJournal checks that the journal entries are exactly after+1..end
// (none: end = after) and returns end and their total size.
func (h *Host) scanJournal(after uint64) (end uint64, size int64, err error) {
	iter := h.ldb.NewIterator(util.BytesPrefix([]byte(journalPrefix)), nil)
	defer iter.Release()
	end = after
	for iter.Next() {
		seq, ok := parseJournalKey(iter.Key())
		if !ok || seq != end+1 {
			return 0, 0, fmt.Errorf("journal entry %x where sequence %d was due: %w", truncate(iter.Key()), end+1, errCorruptRecord)
		}
		end = seq
		size += int64(len(iter.Value()))
	}
	if err := iter.Error(); err != nil {
		return 0, 0, fmt.Errorf("scan journal: %w", err)
	}
	return end, size, nil
}

// checkChunks checks that the stored chunks are exactly those m names.
func (h *Host) checkChunks(m manifest) error {
	iter := h.ldb.NewIterator(util.BytesPrefix([]byte(chunkPrefix)), nil)
	defer iter.Release()
	var next uint32
	var total uint64
	for iter.Next() {
		if !bytes.Equal(iter.Key(), chunkKey(next)) || next >= m.chunks {
			return fmt.Errorf("snapshot chunk %x where chunk %d of %d was due: %w", truncate(iter.Key()), next, m.chunks, errCorruptRecord)
		}
		next++
		total += uint64(len(iter.Value()))
	}
	if err := iter.Error(); err != nil {
		return fmt.Errorf("check snapshot chunks: %w", err)
	}
	if next != m.chunks || total != m.totalBytes {
		return fmt.Errorf("snapshot has %d chunks of %d bytes, manifest says %d of %d: %w", next, total, m.chunks, m.totalBytes, errCorruptRecord)
	}
	return nil
}

// readJournal reads and decodes the journal entry at seq.
func (h *Host) readJournal(seq uint64) ([]app.Operation, error) {
	value, err := h.ldb.Get(journalKey(seq), nil)
	if err != nil {
		return nil, fatal(fmt.Errorf("read journal at sequence %d: %w", seq, err))
	}
	ops, err := decodeJournal(value)
	if err != nil {
		return nil, fatal(fmt.Errorf("journal at sequence %d: %w", seq, err))
	}
	return ops, nil
}

// chunkReader reads the stored snapshot m names, chunk by chunk.
type chunkReader struct {
	ldb   *leveldb.DB
	m     manifest
	next  uint32
	buf   []byte
	total uint64
	err   error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.next == r.m.chunks {
			if r.total != r.m.totalBytes {
				r.err = fatal(fmt.Errorf("snapshot of %d bytes, manifest says %d: %w", r.total, r.m.totalBytes, errCorruptRecord))
				return 0, r.err
			}
			return 0, io.EOF
		}
		chunk, err := r.ldb.Get(chunkKey(r.next), nil)
		if err != nil {
			r.err = fatal(fmt.Errorf("read snapshot chunk %d: %w", r.next, err))
			return 0, r.err
		}
		r.next++
		r.total += uint64(len(chunk))
		r.buf = chunk
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// chunkWriter cuts a snapshot into chunks of ChunkSize, refusing more
// than limit bytes.
type chunkWriter struct {
	chunks [][]byte
	total  uint64
	limit  uint64
}

var errSnapshotTooBig = errors.New("snapshot over MaxSnapshotBytes")

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.total+uint64(len(p)) > w.limit {
		return 0, fmt.Errorf("%w (%d bytes)", errSnapshotTooBig, w.limit)
	}
	n := len(p)
	for len(p) > 0 {
		if len(w.chunks) == 0 || len(w.chunks[len(w.chunks)-1]) == ChunkSize {
			w.chunks = append(w.chunks, make([]byte, 0, min(ChunkSize, len(p))))
		}
		last := &w.chunks[len(w.chunks)-1]
		k := min(ChunkSize-len(*last), len(p))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
	w.total += uint64(n)
	return n, nil
}

// Begin starts a batch.
func (h *Host) Begin() { h.pending = nil }

// Stage adds the batch's records to b: the recorded state and the journal
// entry, or, when a snapshot was taken, the new chunks and manifest with
// the old journal and extra chunks deleted.
func (h *Host) Stage(b execution.Batch) error {
	p := h.pending
	if p == nil {
		return errors.New("apphost: stage: no batch executed")
	}
	b.Put([]byte(recordedKey), encodeState(p.state))
	if p.snapshot == nil {
		b.Put(journalKey(p.state.Sequence), p.journal)
		return nil
	}
	for i, c := range p.snapshot.chunks {
		b.Put(chunkKey(uint32(i)), c)
	}
	for i := uint32(len(p.snapshot.chunks)); i < h.manifest.chunks; i++ {
		b.Delete(chunkKey(i))
	}
	m := manifest{state: p.state, chunks: uint32(len(p.snapshot.chunks)), totalBytes: p.snapshot.total}
	b.Put([]byte(manifestKey), m.encode())
	for s := h.manifest.state.Sequence + 1; s < p.state.Sequence; s++ {
		b.Delete(journalKey(s))
	}
	return nil
}

// Commit makes the pending batch the recorded state: the application is
// in sync with it.
func (h *Host) Commit() {
	p := h.pending
	if p == nil {
		return
	}
	h.pending = nil
	h.recorded, h.hasRecorded = p.state, true
	h.digest = hostDigest(p.state)
	if p.snapshot != nil {
		h.manifest = manifest{state: p.state, chunks: uint32(len(p.snapshot.chunks)), totalBytes: p.snapshot.total}
		h.journalBytes = 0
	} else {
		h.journalBytes += int64(len(p.journal))
	}
	h.inSync = true
}

// Rollback forgets the pending batch. The application may have executed
// it, so it is out of sync: the next batch resyncs it first.
func (h *Host) Rollback() {
	h.pending = nil
	h.inSync = false
}

// TransferKey reports whether key is a transferred record: the manifest,
// a snapshot chunk or a journal entry (the recorded state is derived).
func (h *Host) TransferKey(key []byte) bool { return isTransferKey(key) }

// CheckTransferEntry validates a record from a peer by itself: the key's
// shape, the manifest's encoding and bounds, a chunk's size (1 to
// ChunkSize bytes), a journal entry's encoding (MaxJournalEntryBytes,
// client IDs of 1 to execution.MaxClientIDSize bytes). Reload checks that
// the records fit together.
func (h *Host) CheckTransferEntry(key, value []byte) error {
	if err := checkEntry(key, value); err != nil {
		return fmt.Errorf("apphost: transfer entry: %w", err)
	}
	return nil
}

// Reload rebuilds the application from the records state transfer wrote
// (or wiped): the chunks must be those the manifest names and the journal
// contiguous from the snapshot on. With no record it only marks the
// application out of sync (the next batch restores it to the initial
// state when needed). Otherwise it restores the application from the
// snapshot, replays the journal and records the State the application
// then reports (trusting no digest from the peer), without retrying: a
// failure fails the restore, which the caller retries. Not allowed during
// a batch.
func (h *Host) Reload() error {
	if h.pending != nil {
		return errors.New("apphost: reload during a batch")
	}
	h.busy.Store(true)
	defer h.busy.Store(false)
	if err := h.reload(); err != nil {
		h.inSync = false
		if !isFatal(err) && !errors.Is(err, ErrBrokenApplication) {
			h.markUnavailable(err)
		}
		return fmt.Errorf("apphost: reload: %w", err)
	}
	h.markAvailable()
	return nil
}

func (h *Host) reload() error {
	m, err := h.loadManifest()
	if err != nil {
		return fatal(err)
	}
	if err := h.checkChunks(m); err != nil {
		return fatal(err)
	}
	end, size, err := h.scanJournal(m.state.Sequence)
	if err != nil {
		return fatal(err)
	}
	h.manifest, h.journalBytes, h.inSync = m, size, false
	if end == 0 {
		h.recorded, h.hasRecorded, h.digest = app.State{}, false, hostDigest(app.State{})
		if err := h.ldb.Delete([]byte(recordedKey), &opt.WriteOptions{Sync: false}); err != nil {
			return fatal(fmt.Errorf("delete recorded state: %w", err))
		}
		return nil
	}
	h.resyncs.Add(1)
	state, err := h.restoreAndReplay(h.ctx, end)
	if err != nil {
		return err
	}
	if state.Sequence != end {
		return fmt.Errorf("%w: restored and replayed to sequence %d, the application reports sequence %d", ErrBrokenApplication, end, state.Sequence)
	}
	if err := h.ldb.Put([]byte(recordedKey), encodeState(state), &opt.WriteOptions{Sync: false}); err != nil {
		return fatal(fmt.Errorf("store recorded state: %w", err))
	}
	h.recorded, h.hasRecorded, h.digest = state, true, hostDigest(state)
	h.inSync = true
	return nil
}
