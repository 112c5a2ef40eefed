package crypto

import (
	"bytes"
)

// RequestChecker works out CheckOfRequest for the requests of one message
// (a client's frame, a PRE-PREPARE's batch), where the requests of one
// bundle usually come together. Each request of a bundle carries its
// leaf's proof, and checking it alone hashes every inner node on its path
// to the root: n requests of one bundle cost about n log n inner hashes
// though the tree has n-1. A RequestChecker remembers, at each level, the
// last inner node it hashed with its two children (an inner node is a
// function of its children, so a remembered one is right whoever asks):
// the requests of a bundle in the order signed share every node above the
// one where their paths join, so each inner node is hashed once. It also
// remembers the statement and cache key of the last bundle. The requests
// of a bundle then cost about one inner hash each, one statement and one
// key; requests of bundles interleaved cost what they cost alone. Its answers
// are CheckOfRequest's and the cache keys RequestCheck.Key's. The zero
// value is ready to use; it is not safe for concurrent use, and is meant
// to live for one message.
type RequestChecker struct {
	levels [maxBundleProof]checkedNode
	// last is the last bundled check made, of client lastClient; lastKey
	// its cache key once asked (keyed).
	last       RequestCheck
	lastClient []byte
	lastCount  uint64
	lastRoot   Digest
	lastKey    Digest
	keyed      bool
	// hashed counts the inner nodes hashed (for the tests).
	hashed int
}

// Check is CheckOfRequest(clientID, payload, sig).
func (c *RequestChecker) Check(clientID, payload, sig []byte) (RequestCheck, error) {
	return checkOfRequest(clientID, payload, sig, c)
}

// Key is check.Key(), for a check this checker made.
func (c *RequestChecker) Key(check RequestCheck) Digest {
	if check.Bundled && c.keyed && c.isLast(check) {
		return c.lastKey
	}
	key := check.Key()
	if check.Bundled && c.isLast(check) {
		c.lastKey, c.keyed = key, true
	}
	return key
}

// isLast reports whether check is the last bundled check made (the same
// statement, which Check reuses, and the same signature).
func (c *RequestChecker) isLast(check RequestCheck) bool {
	return len(check.Payload) > 0 && len(c.last.Payload) > 0 && &check.Payload[0] == &c.last.Payload[0] &&
		bytes.Equal(check.Signature, c.last.Signature)
}

// checkedNode is an inner node hashed, with its children.
type checkedNode struct {
	left, right, node Digest
	set               bool
}

// inner is MerkleInner(domain, left, right) for the inner node at level
// (0: the leaves' parents), remembered when domain is that of bundles'
// inner nodes (the only one a checker hashes).
func (c *RequestChecker) inner(domain string, level int, left, right Digest) Digest {
	if c == nil || domain != bundleNodeDomain || level >= len(c.levels) {
		return MerkleInner(domain, left, right)
	}
	n := &c.levels[level]
	if !n.set || n.left != left || n.right != right {
		c.hashed++
		*n = checkedNode{left: left, right: right, node: MerkleInner(domain, left, right), set: true}
	}
	return n.node
}

// bundled returns the check of a bundle signature sig (its 64 bytes) of
// client clientID over a tree of count leaves with root root: the last
// one's statement when it is the same bundle, so that Key can tell.
func (c *RequestChecker) bundled(clientID []byte, count uint64, root Digest, sig []byte) RequestCheck {
	if c != nil && c.last.Bundled && c.lastCount == count && c.lastRoot == root &&
		bytes.Equal(c.lastClient, clientID) && bytes.Equal(c.last.Signature, sig) {
		return c.last
	}
	check := RequestCheck{
		Domain:    DomainClientRequestBundle,
		Payload:   BundleStatement(clientID, count, root),
		Signature: sig,
		Bundled:   true,
	}
	if c != nil {
		c.last, c.lastClient, c.lastCount, c.lastRoot, c.keyed = check, clientID, count, root, false
	}
	return check
}
