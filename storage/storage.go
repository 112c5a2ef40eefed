package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"github.com/syndtr/goleveldb/leveldb"
	leveldberrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/pbftnode/pbftnode/storage/wal"
)

// Key prefixes, one per owner of data in the replica's database.
const (
	PrefixProtocol = "p/"
	PrefixApp      = "a/"
	PrefixExecutor = "e/"
	PrefixRaft     = "r/"
)

// ErrLocked is returned (wrapped) by Open when another process, or another
// open DB in this process, holds the database.
var ErrLocked = errors.New("storage: database is locked by another process")

// Options configure Open.
type Options struct {
	// Sync makes safety-critical writes (AppendLog, SaveView,
	// SaveStableCheckpoint, SetTransferInProgress) wait
	// for fsync. Production replicas must set it;
	// DefaultOptions does. Without it a power loss can lose protocol state
	// the replica has already acted on, which can break safety.
	Sync bool
	// Logger receives operational messages. Nil discards them.
	Logger *slog.Logger
	// WALSegmentBytes is the preallocated size of each segment of the
	// protocol log (package wal). Zero means wal.DefaultSegmentBytes.
	WALSegmentBytes int64
}

// DefaultOptions returns the production options: Sync on.
func DefaultOptions(logger *slog.Logger) Options {
	return Options{Sync: true, Logger: logger}
}

// DB is a replica's database. Create it with Open; Close it when done.
type DB struct {
	dir    string
	ldb    *leveldb.DB
	sync   bool
	logger *slog.Logger
	// wal holds the protocol log (nil for OpenMem, whose log stays in
	// goleveldb under p/log/).
	wal *wal.WAL
	// logFloor is a sequence below which DeleteLogBelow already deleted
	// every log entry (0 after Open): where its next scan starts, and
	// below which LoadLog returns nothing.
	logFloor atomic.Uint64
}

// Open opens (creating if needed) the database in dir/db and the protocol
// log in dir/wal. It fails with an
// error wrapping ErrLocked when the database is already open elsewhere, and
// with a clear error when it is corrupted (it never repairs silently).
func Open(dir string, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, "db")
	ldb, err := leveldb.OpenFile(path, levelDBOptions())
	if err != nil {
		switch {
		case errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN):
			return nil, fmt.Errorf("open %s: %w (%w)", path, ErrLocked, err)
		case leveldberrors.IsCorrupted(err):
			return nil, fmt.Errorf("open %s: database is corrupted, restore it from a peer or a backup: %w", path, err)
		default:
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	log, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{SegmentBytes: opts.WALSegmentBytes, Sync: opts.Sync})
	if err != nil {
		_ = ldb.Close()
		return nil, fmt.Errorf("open the protocol log in %s: %w", dir, err)
	}
	if !opts.Sync {
		logger.Warn("storage: fsync disabled; a power loss can lose protocol state (benchmarks only)", "path", path)
	}
	return &DB{dir: path, ldb: ldb, wal: log, sync: opts.Sync, logger: logger}, nil
}

// Close closes the database. Further calls on d fail.
func (d *DB) Close() error {
	var walErr error
	if d.wal != nil {
		walErr = d.wal.Close()
	}
	if err := d.ldb.Close(); err != nil {
		return fmt.Errorf("close %s: %w", d.dir, err)
	}
	if walErr != nil {
		return fmt.Errorf("close %s: %w", d.dir, walErr)
	}
	return nil
}

// LevelDB returns the underlying goleveldb handle for owners that manage
// their own keys (application state, executor, Raft). Callers must stay
// within their own prefix and must not close it.
func (d *DB) LevelDB() *leveldb.DB { return d.ldb }

// Logger returns the logger the database was opened with (a discarding
// one when Options.Logger was nil), for owners of keys that log, such as
// the Raft log.
func (d *DB) Logger() *slog.Logger { return d.logger }

// Sync reports whether safety-critical writes are fsynced.
func (d *DB) Sync() bool { return d.sync }

// Dir returns the directory holding the goleveldb files (dir/db).
func (d *DB) Dir() string { return d.dir }

// SizeBytes returns the approximate on-disk size: the sum of the sizes of
// the regular files under the database directory and the bytes of the
// protocol log's records (wal.WAL.Segments).
func (d *DB) SizeBytes() (int64, error) {
	var total int64
	if d.wal != nil {
		_, total = d.wal.Segments()
	}
	err := filepath.WalkDir(d.dir, func(_ string, entry fs.DirEntry, err error) error {
		if err != nil {
			// A table file can vanish under a concurrent compaction.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !entry.Type().IsRegular() {
			return nil
		}
		info, err := entry.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", d.dir, err)
	}
	return total, nil
}

func (d *DB) writeOptions() *opt.WriteOptions {
	return &opt.WriteOptions{Sync: d.sync}
}

// levelDBOptions are the goleveldb options of every replica database: a
// bloom filter (10 bits per key, about 1% false positives) lets reads of
// absent keys (a put of a new key reads its old value for the state
// digest) skip table lookups.
func levelDBOptions() *opt.Options {
	return &opt.Options{Filter: filter.NewBloomFilter(10)}
}
