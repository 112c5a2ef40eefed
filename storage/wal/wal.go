package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

const (
	// DefaultSegmentBytes is the preallocated size of a segment.
	DefaultSegmentBytes = 8 << 20
	// DefaultMaxRecordBytes bounds one record's data.
	DefaultMaxRecordBytes = 64 << 20

	magic      = "PBFTWAL1"
	headerLen  = 16
	segmentExt = ".wal"
	nextName   = "next.tmp"
	// zeroChunk is how much of a new segment is zeroed per write.
	zeroChunk = 1 << 20
)

// ErrCorrupt is wrapped by errors about a segment whose records do not
// check out where they cannot be a torn tail.
var ErrCorrupt = errors.New("wal: corrupt segment")

// ErrClosed is returned by calls on a closed WAL.
var ErrClosed = errors.New("wal: closed")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure Open.
type Options struct {
	// SegmentBytes is the preallocated size of each segment (a record
	// larger than what is left starts a new one; a record larger than a
	// segment makes that segment longer). Zero means DefaultSegmentBytes.
	SegmentBytes int64
	// MaxRecordBytes bounds a record's data. Zero means
	// DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Sync makes Append wait for fdatasync. Production logs set it;
	// without it a power loss can lose appends that returned.
	Sync bool
}

// Record is one entry: Tag is the caller's ordering key (RemoveBelow
// compares it), Data is opaque.
type Record struct {
	Tag  uint64
	Data []byte
}

// segment is a segment file's name and what it holds.
type segment struct {
	index  uint64
	maxTag uint64
	// end is the offset just past its last record.
	end int64
}

// WAL is a write-ahead log in one directory. Create it with Open.
type WAL struct {
	dir  string
	opts Options

	mu     sync.Mutex
	closed bool
	// closedSegs are the segments not appended to any more, oldest first.
	closedSegs []segment
	// active is the segment being appended to (nil before the first
	// Append), file its open handle.
	active *segment
	file   *os.File
	buf    []byte
	// unsynced: the active segment holds records written (Write) since its
	// last fdatasync, with Options.Sync set.
	unsynced bool
	// next is the preparation of the segment file after the active one.
	next *preparation
	// syncs counts fdatasyncs of segments with records (for the tests).
	syncs int
}

// Open opens the WAL in dir, creating dir if needed. It checks every
// segment, cuts the last one's torn tail off, and removes a half-prepared
// segment file.
func Open(dir string, opts Options) (*WAL, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{dir: dir, opts: opts}
	if err := os.Remove(filepath.Join(dir, nextName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("wal: remove unused segment: %w", err)
	}
	indexes, err := segmentIndexes(dir)
	if err != nil {
		return nil, err
	}
	for i, index := range indexes {
		last := i == len(indexes)-1
		seg, err := w.checkSegment(index, last)
		if err != nil {
			return nil, err
		}
		if seg != nil {
			w.closedSegs = append(w.closedSegs, *seg)
		}
	}
	return w, nil
}

// segmentIndexes lists the segment files in dir by index.
func segmentIndexes(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var indexes []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		index, err := strconv.ParseUint(name, 16, 64)
		if err != nil || len(name) != 16 {
			return nil, fmt.Errorf("wal: unexpected file %s in %s", e.Name(), dir)
		}
		indexes = append(indexes, index)
	}
	slices.Sort(indexes)
	return indexes, nil
}

func (w *WAL) segmentPath(index uint64) string {
	return filepath.Join(w.dir, fmt.Sprintf("%016x%s", index, segmentExt))
}

// checkSegment reads a segment through. The last segment may end in a
// torn append: it is cut at its last whole record (and removed when it
// holds none, as after a crash while it was being made the active one).
func (w *WAL) checkSegment(index uint64, last bool) (*segment, error) {
	path := w.segmentPath(index)
	seg := segment{index: index}
	end, err := scanFile(path, -1, w.opts.MaxRecordBytes, last, func(tag uint64, _ []byte) error {
		seg.maxTag = max(seg.maxTag, tag)
		return nil
	})
	if err != nil {
		return nil, err
	}
	seg.end = end
	if !last {
		return &seg, nil
	}
	if end <= int64(len(magic)) {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("wal: remove empty segment: %w", err)
		}
		return nil, syncDir(w.dir)
	}
	// Cut the tail so that no stale bytes follow the valid records; the
	// next Append starts a new segment.
	if err := truncateSynced(path, end); err != nil {
		return nil, fmt.Errorf("wal: cut the tail of %s: %w", path, err)
	}
	return &seg, nil
}

func truncateSynced(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Append writes recs as one write and returns once they are durable
// (fdatasync, when Options.Sync is set), with every record written before
// them. A record with data over Options.MaxRecordBytes is refused and
// nothing is written.
func (w *WAL) Append(recs []Record) error { return w.write(recs, w.opts.Sync) }

// Write writes recs as one write and returns without waiting for them to
// be durable: a crash (a power loss; a killed process loses nothing the
// kernel holds) may lose them and every record written after them, never
// an earlier one, until the next Append, or a roll to the next segment,
// makes them durable. Records that a crash cut short or left out are
// found as a torn tail by Open, which cuts them off.
func (w *WAL) Write(recs []Record) error { return w.write(recs, false) }

func (w *WAL) write(recs []Record, sync bool) error {
	if len(recs) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.buf = w.buf[:0]
	maxTag := uint64(0)
	for i, r := range recs {
		if len(r.Data) > w.opts.MaxRecordBytes {
			return fmt.Errorf("wal: record %d: %d bytes, over the %d-byte limit", i, len(r.Data), w.opts.MaxRecordBytes)
		}
		w.buf = appendRecord(w.buf, r)
		maxTag = max(maxTag, r.Tag)
	}
	if err := w.makeRoom(int64(len(w.buf))); err != nil {
		return err
	}
	if _, err := w.file.WriteAt(w.buf, w.active.end); err != nil {
		return fmt.Errorf("wal: append %d records: %w", len(recs), err)
	}
	if sync {
		if err := w.datasync(); err != nil {
			return fmt.Errorf("wal: sync %d records: %w", len(recs), err)
		}
	}
	w.unsynced = !sync && w.opts.Sync
	w.active.end += int64(len(w.buf))
	w.active.maxTag = max(w.active.maxTag, maxTag)
	if w.next == nil && w.active.end > w.opts.SegmentBytes/2 {
		w.next = w.prepare() // ready before this one fills up
	}
	if cap(w.buf) > 4*zeroChunk {
		w.buf = nil
	}
	return nil
}

func (w *WAL) datasync() error {
	w.syncs++
	return datasync(w.file)
}

func appendRecord(buf []byte, r Record) []byte {
	var tag [8]byte
	binary.LittleEndian.PutUint64(tag[:], r.Tag)
	sum := crc32.Update(crc32.Update(0, castagnoli, tag[:]), castagnoli, r.Data)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r.Data)))
	buf = binary.LittleEndian.AppendUint32(buf, sum)
	buf = append(buf, tag[:]...)
	return append(buf, r.Data...)
}

// makeRoom makes sure the active segment can take n more bytes: it starts
// the first segment, or rolls to the next when n does not fit in what is
// left of a segment that already holds records.
func (w *WAL) makeRoom(n int64) error {
	if w.active != nil && (w.active.end+n <= w.opts.SegmentBytes || w.active.end <= int64(len(magic))) {
		return nil
	}
	index := uint64(0)
	if w.active != nil {
		index = w.active.index + 1
	} else if len(w.closedSegs) > 0 {
		index = w.closedSegs[len(w.closedSegs)-1].index + 1
	}
	if w.next == nil {
		w.next = w.prepareNow()
	}
	f, err := w.next.take(w.segmentPath(index), w.opts.Sync)
	w.next = nil
	if err != nil {
		return err
	}
	if w.file != nil {
		if w.unsynced {
			// Records written without a sync must not outlive the segment
			// unsynced: a later Append syncs only the next one.
			if err := w.datasync(); err != nil {
				_ = f.Close()
				return fmt.Errorf("wal: sync segment before rolling: %w", err)
			}
			w.unsynced = false
		}
		if err := w.file.Close(); err != nil {
			_ = f.Close()
			return fmt.Errorf("wal: close segment: %w", err)
		}
		w.closedSegs = append(w.closedSegs, *w.active)
	}
	w.file = f
	w.active = &segment{index: index, end: int64(len(magic))}
	return nil
}

// RemoveBelow deletes the closed segments all of whose records have tags
// below tag, and reports how many it deleted. Removal is not synced: a
// segment a crash brings back holds only records below tag, which the
// caller no longer reads.
func (w *WAL) RemoveBelow(tag uint64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	removed := 0
	for len(w.closedSegs) > 0 && w.closedSegs[0].maxTag < tag {
		if err := os.Remove(w.segmentPath(w.closedSegs[0].index)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("wal: remove segment: %w", err)
		}
		w.closedSegs = w.closedSegs[1:]
		removed++
	}
	return removed, nil
}

// Scan calls fn with every record in append order, stopping at fn's first
// error, which it returns. data is valid only during the call.
func (w *WAL) Scan(fn func(tag uint64, data []byte) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	segs := slices.Clone(w.closedSegs)
	if w.active != nil {
		segs = append(segs, *w.active)
	}
	for _, s := range segs {
		if _, err := scanFile(w.segmentPath(s.index), s.end, w.opts.MaxRecordBytes, false, fn); err != nil {
			return err
		}
	}
	return nil
}

// Segments reports how many segment files the WAL holds and the bytes of
// their records (headers included; the preallocated space after the last
// record of a segment, and the prepared next segment, are not counted).
func (w *WAL) Segments() (count int, bytes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	count = len(w.closedSegs)
	for _, s := range w.closedSegs {
		bytes += s.end
	}
	if w.active != nil {
		count++
		bytes += w.active.end
	}
	return count, bytes
}

// Close makes the records written durable and closes the WAL; its
// records stay.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var err error
	if w.next != nil {
		err = w.next.discard()
		w.next = nil
	}
	if w.file != nil {
		if w.unsynced {
			if serr := w.datasync(); err == nil && serr != nil {
				err = fmt.Errorf("wal: sync on close: %w", serr)
			}
		}
		if cerr := w.file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("wal: close: %w", cerr)
		}
	}
	return err
}
