package storage

import (
	"fmt"
	"log/slog"

	"github.com/syndtr/goleveldb/leveldb"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
)

// OpenMem returns a database held in memory (goleveldb's memory storage):
// nothing touches the disk and it vanishes with the DB. The deterministic
// simulator (internal/sim) gives each simulated replica one; a simulated
// crash keeps the DB, as a real crash keeps the files. Dir returns "" and
// SizeBytes 0 for it.
func OpenMem(opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ldb, err := leveldb.Open(lstorage.NewMemStorage(), levelDBOptions())
	if err != nil {
		return nil, fmt.Errorf("open in-memory database: %w", err)
	}
	return &DB{ldb: ldb, sync: opts.Sync, logger: logger}, nil
}
