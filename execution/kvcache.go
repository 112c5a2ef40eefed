package execution

// Bounds of the KV read cache. An entry is charged len(key) + len(value)
// + kvCacheEntryOverhead bytes; values over kvCacheMaxValue bytes are not
// cached (their reads go to the database).
const (
	kvCacheMaxEntries    = 1 << 16
	kvCacheMaxBytes      = 32 << 20
	kvCacheMaxValue      = 4 << 10
	kvCacheEntryOverhead = 160
)

// kvCacheEntry is what the committed state holds for one key: its value
// (present) or nothing (!present), and, once computed, the entry hash of
// key and value (hashed).
type kvCacheEntry struct {
	key     string
	value   []byte // never modified: it may be shared with callers' reads
	present bool
	hashed  bool
	hash    [32]byte
	// prev and next link the entries from the most recently used (after
	// the sentinel) to the least recently used (before it).
	prev, next *kvCacheEntry
}

// kvCache is a bounded LRU cache of the KV's committed state, so that a
// write (which must subtract the old entry's hash from the digest) or a
// read of a recently used key needs no database read. It caches absent
// keys too.
//
// Contract, kept by KV: every entry equals the committed state in the
// database (never a batch's uncommitted write). KV fills it from database
// reads and, on Commit, with the batch's writes; it clears it whenever the
// database's entries may have changed behind its back (Restore, Reload,
// and the executor's state transfer through DropCache). Eviction is LRU
// and deterministic, though nothing observable depends on it.
type kvCache struct {
	// maxEntries and maxBytes bound the cache (kvCacheMaxEntries and
	// kvCacheMaxBytes; tests shrink them).
	maxEntries, maxBytes int

	entries  map[string]*kvCacheEntry
	sentinel kvCacheEntry
	bytes    int
	// free recycles evicted and removed entries.
	free []*kvCacheEntry
}

func newKVCache() *kvCache {
	c := &kvCache{maxEntries: kvCacheMaxEntries, maxBytes: kvCacheMaxBytes}
	c.reset()
	return c
}

// reset empties the cache.
func (c *kvCache) reset() {
	c.entries = make(map[string]*kvCacheEntry)
	c.sentinel.prev, c.sentinel.next = &c.sentinel, &c.sentinel
	c.bytes = 0
	c.free = nil
}

func (c *kvCache) unlink(e *kvCacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *kvCache) pushFront(e *kvCacheEntry) {
	e.prev, e.next = &c.sentinel, c.sentinel.next
	e.prev.next, e.next.prev = e, e
}

func entryCost(key string, value []byte) int {
	return len(key) + len(value) + kvCacheEntryOverhead
}

// lookup returns the cached entry of key, marking it most recently used,
// or nil. The entry is valid until the next store, remove or reset (which
// may recycle it); the caller must not modify it except to fill in its
// hash.
func (c *kvCache) lookup(key []byte) *kvCacheEntry {
	e := c.entries[string(key)]
	if e != nil && c.sentinel.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	return e
}

// store records that the committed value of key is value (present) or
// that key is absent (!present, value ignored), with the entry hash when
// hashed. value must never be modified afterwards. A value too large to
// cache removes any entry of key instead.
func (c *kvCache) store(key string, value []byte, present bool, hash [32]byte, hashed bool) {
	if !present {
		value = nil
	}
	if len(value) > kvCacheMaxValue || len(key) > kvCacheMaxValue {
		c.remove(key)
		return
	}
	e := c.entries[key]
	if e != nil {
		c.bytes -= entryCost(e.key, e.value)
		c.unlink(e)
	} else {
		if n := len(c.free); n > 0 {
			e, c.free = c.free[n-1], c.free[:n-1]
		} else {
			e = new(kvCacheEntry)
		}
		e.key = key
		c.entries[key] = e
	}
	e.value, e.present, e.hash, e.hashed = value, present, hash, hashed
	c.bytes += entryCost(key, value)
	c.pushFront(e)
	for len(c.entries) > c.maxEntries || c.bytes > c.maxBytes {
		c.drop(c.sentinel.prev)
	}
}

// remove drops key's entry, if any.
func (c *kvCache) remove(key string) {
	if e := c.entries[key]; e != nil {
		c.drop(e)
	}
}

func (c *kvCache) drop(e *kvCacheEntry) {
	c.unlink(e)
	delete(c.entries, e.key)
	c.bytes -= entryCost(e.key, e.value)
	*e = kvCacheEntry{}
	if len(c.free) < 1024 {
		c.free = append(c.free, e)
	}
}
