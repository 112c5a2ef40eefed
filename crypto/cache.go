package crypto

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// verifiedKeyPrefix separates the cache's keys from every other SHA-256 the
// project computes.
const verifiedKeyPrefix = "pbftnode/v1/verified"

// verifiedBundleKeyPrefix separates the keys of bundle statements from
// those of request payloads.
const verifiedBundleKeyPrefix = "pbftnode/v1/verified-bundle"

// VerifiedCache remembers (payload, signature) pairs whose signature was
// already checked and found valid, so a replica verifies each client
// request once even though it sees it twice (from the client and inside a
// PRE-PREPARE). Entries are keyed by SHA-256 over the length-framed payload
// and signature; when the cache holds capacity entries, adding a new one
// evicts the oldest. It is safe for concurrent use.
//
// The key covers neither the public key nor the domain nor the cluster ID:
// use a cache for one kind of signature only (client requests, whose payload
// names the signing client), and Add only pairs that verified.
type VerifiedCache struct {
	mu       sync.Mutex
	entries  map[Digest]struct{}
	order    []Digest // ring buffer of keys, oldest at oldest
	oldest   int
	capacity int
}

// NewVerifiedCache returns an empty cache holding at most capacity entries.
// A capacity below 1 gives a cache that remembers nothing.
func NewVerifiedCache(capacity int) *VerifiedCache {
	capacity = max(capacity, 0)
	return &VerifiedCache{
		entries:  make(map[Digest]struct{}, capacity),
		order:    make([]Digest, 0, capacity),
		capacity: capacity,
	}
}

// VerifiedKey is the cache key of (payload, sig): SHA-256 over prefix ||
// uvarint(len(payload)) || payload || sig. The length prefix keeps
// (payload, sig) pairs that concatenate to the same bytes from sharing a
// key, so a verified pair can never vouch for a different one. A caller
// that looks a pair up and later adds it computes the key once and uses
// ContainsKey and AddKey.
func VerifiedKey(payload, sig []byte) Digest {
	return verifiedKey(verifiedKeyPrefix, payload, sig)
}

// VerifiedBundleKey is the cache key of a bundle statement and its
// signature (RequestCheck.Bundled): VerifiedKey's form under a prefix of
// its own, so a verified bundle statement never vouches for a request
// whose payload has the same bytes, nor the reverse.
func VerifiedBundleKey(statement, sig []byte) Digest {
	return verifiedKey(verifiedBundleKeyPrefix, statement, sig)
}

// Key is the cache key of the check: VerifiedBundleKey for a bundle's
// statement, VerifiedKey for a request's own payload.
func (c RequestCheck) Key() Digest {
	if c.Bundled {
		return VerifiedBundleKey(c.Payload, c.Signature)
	}
	return VerifiedKey(c.Payload, c.Signature)
}

func verifiedKey(prefix string, payload, sig []byte) Digest {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(binary.AppendUvarint(nil, uint64(len(payload))))
	h.Write(payload)
	h.Write(sig)
	var d Digest
	h.Sum(d[:0])
	return d
}

// Contains reports whether (payload, sig) was added and not yet evicted.
func (c *VerifiedCache) Contains(payload, sig []byte) bool {
	return c.ContainsKey(VerifiedKey(payload, sig))
}

// ContainsKey is Contains for the pair whose VerifiedKey is key.
func (c *VerifiedCache) ContainsKey(key Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	return ok
}

// Add records that sig is a valid signature over payload. Adding a pair that
// is already present changes nothing (its age is not refreshed).
func (c *VerifiedCache) Add(payload, sig []byte) {
	if c.capacity == 0 {
		return
	}
	c.AddKey(VerifiedKey(payload, sig))
}

// AddKey is Add for the pair whose VerifiedKey is key: add it only if that
// pair's signature verified.
func (c *VerifiedCache) AddKey(key Digest) {
	if c.capacity == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok {
		return
	}
	if len(c.order) < c.capacity {
		c.order = append(c.order, key)
	} else {
		delete(c.entries, c.order[c.oldest])
		c.order[c.oldest] = key
		c.oldest = (c.oldest + 1) % c.capacity
	}
	c.entries[key] = struct{}{}
}

// Len returns the number of entries the cache holds.
func (c *VerifiedCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
