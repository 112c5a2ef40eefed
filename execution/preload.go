package execution

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// DefaultPreloadValueBytes is the value size of a preloaded entry when
// none is given: 10 million entries then make about 1 GiB of state.
const DefaultPreloadValueBytes = 100

// preloadBatchEntries is how many entries Preload writes per goleveldb
// batch.
const preloadBatchEntries = 1 << 14

// PreloadKey returns the key of preloaded entry i: "k" and i in at least
// seven decimal digits, the key names of the benchmark's key-value
// workload (benchmarks.kvWorkload, which draws its keys here), so its
// puts and gets hit the entries.
func PreloadKey(i int) []byte { return AppendPreloadKey(nil, i) }

// AppendPreloadKey appends PreloadKey(i) to dst.
// It writes what fmt.Appendf(dst, "k%07d", i) writes, without fmt's cost
// (the benchmark's load generator makes a key per operation).
func AppendPreloadKey(dst []byte, i int) []byte {
	if i < 0 {
		return fmt.Appendf(dst, "k%07d", i)
	}
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(i), 10)
	dst = append(dst, 'k')
	for n := len(d); n < 7; n++ {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

// appendPreloadValue appends entry i's value: valueBytes lowercase
// letters drawn from a splitmix64 stream seeded with i, deterministic
// (every replica's preload writes the same bytes) and, like real data,
// not compressible by goleveldb's snappy (a repeating pattern would shrink
// 1 GiB of state to a few dozen MiB on disk).
func appendPreloadValue(dst []byte, i, valueBytes int) []byte {
	state := uint64(i)
	var word uint64
	for j := range valueBytes {
		if j%8 == 0 {
			state += 0x9e3779b97f4a7c15
			z := state
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
			z = (z ^ (z >> 27)) * 0x94d049bb133111eb
			word = z ^ (z >> 31)
		}
		dst = append(dst, byte('a'+(word&0xff)%26))
		word >>= 8
	}
	return dst
}

// Preload writes keys entries, PreloadKey(i) set to a deterministic value
// of valueBytes bytes for i in [0, keys), into the key-value state of the
// replica database db, and stores their digest accumulator: afterwards
// NewKV on db and an Executor over it hold exactly the state (and
// StateDigest) of a KV that executed those puts before sequence 1,
// outside any client request (no reply cache, LastExecuted 0). It
// returns that KV digest.
//
// db must hold no key-value entry and no executed state (a fresh
// database): Preload refuses anything else, so it never mixes with
// replicated state. The writes are unsynced; the caller closes db, which
// flushes them, before any replica opens it. Every replica of a cluster
// must start from the same preload (write it once and CopyDatabase it):
// a replica whose state is wiped later catches up by state transfer,
// which copies the preloaded entries like any others.
func Preload(db *leveldb.DB, keys, valueBytes int) ([32]byte, error) {
	switch {
	case keys < 0:
		return [32]byte{}, fmt.Errorf("preload: %d keys", keys)
	case valueBytes < 0 || valueBytes > MaxValueSize:
		return [32]byte{}, fmt.Errorf("preload: value of %d bytes (0 to %d)", valueBytes, MaxValueSize)
	}
	if err := checkFreshState(db); err != nil {
		return [32]byte{}, err
	}
	var acc adHash
	b := new(leveldb.Batch)
	var key, value []byte
	for i := range keys {
		key = AppendPreloadKey(append(key[:0], kvDataPrefix...), i)
		value = appendPreloadValue(value[:0], i, valueBytes)
		acc.add(entryHash(kvEntryDomain, key[len(kvDataPrefix):], value))
		b.Put(key, value)
		if b.Len() == preloadBatchEntries {
			if err := db.Write(b, &opt.WriteOptions{Sync: false}); err != nil {
				return [32]byte{}, fmt.Errorf("preload: write: %w", err)
			}
			b.Reset()
		}
	}
	digest := acc.bytes()
	b.Put([]byte(kvDigestKey), digest[:])
	if err := db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
		return [32]byte{}, fmt.Errorf("preload: write: %w", err)
	}
	return digest, nil
}

// checkFreshState fails unless db holds nothing under the application's
// and the executor's prefixes.
func checkFreshState(db *leveldb.DB) error {
	for _, prefix := range transferPrefixes {
		iter := db.NewIterator(util.BytesPrefix([]byte(prefix)), nil)
		found := iter.Next()
		iter.Release()
		if err := iter.Error(); err != nil {
			return fmt.Errorf("preload: scan %q: %w", prefix, err)
		}
		if found {
			return fmt.Errorf("preload: the database already holds state under %q: preload needs a fresh one", prefix)
		}
	}
	return nil
}

// PreloadDataDir preloads the replica database in dataDir (the directory
// storage.Open takes; created if missing), closing it afterwards. See
// Preload.
func PreloadDataDir(dataDir string, keys, valueBytes int) ([32]byte, error) {
	db, err := storage.Open(dataDir, storage.Options{Sync: false})
	if err != nil {
		return [32]byte{}, fmt.Errorf("preload: %w", err)
	}
	digest, err := Preload(db.LevelDB(), keys, valueBytes)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("preload: %w", cerr)
	}
	return digest, err
}

// CopyDatabase copies the closed replica database of dataDir (its db
// directory, as storage.Open lays it out) into dstDataDir, which must not
// hold one yet: a replica started on the copy opens the same state.
func CopyDatabase(dataDir, dstDataDir string) error {
	src, dst := filepath.Join(dataDir, "db"), filepath.Join(dstDataDir, "db")
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("copy database: %s already exists", dst)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("copy database: %w", err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("copy database: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("copy database: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("copy database: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
