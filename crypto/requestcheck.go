package crypto

import (
	"bytes"
)

// What a RequestChecker remembers: the last checkerWays inner nodes of
// each level (the paths of that many bundles interleaved), and at most
// maxCheckerBundles bundles (a round of 256 bundled requests has at most
// 256).
const (
	checkerWays       = 16
	maxCheckerBundles = 1024
)

// RequestChecker works out CheckOfRequest for the requests of one round of
// verification (a PRE-PREPARE's batch, the client frames that arrived
// together), where the requests of one bundle usually come together, or
// interleaved with other clients' bundles. Each request of a bundle
// carries its leaf's proof, and checking it alone hashes every inner node
// on its path to the root: n requests of one bundle cost about n log n
// inner hashes though the tree has n-1, and n statements and cache keys
// though the bundle has one. A RequestChecker remembers the inner nodes
// it hashed with their children (an inner node is a function of its
// children, so a remembered one is right whoever asks): at each level the
// last checkerWays, which the requests of a bundle taken in the order
// signed share, and those of up to checkerWays bundles interleaved. It
// also remembers each bundle's
// statement and cache key (at most maxCheckerBundles bundles). The
// requests of a bundle then cost about one inner hash each, one statement
// and one key. Its answers are CheckOfRequest's and the cache keys
// RequestCheck.Key's. The zero value is ready to use; it is not safe for
// concurrent use, and is meant to live for one round.
type RequestChecker struct {
	// levels[l] holds level l's last inner nodes, next[l] the slot the
	// next one takes.
	levels  [maxBundleProof][checkerWays]checkedNode
	next    [maxBundleProof]uint8
	bundles map[Digest]*checkedBundle
	// hashed counts the inner nodes hashed (for the tests).
	hashed int
}

// checkedNode is an inner node hashed, with its children.
type checkedNode struct {
	left, right, node Digest
	set               bool
}

// checkedBundle is a bundle's check, made for client with count leaves,
// and its cache key once asked (keyed).
type checkedBundle struct {
	check  RequestCheck
	client []byte
	count  uint64
	key    Digest
	keyed  bool
}

// Check is CheckOfRequest(clientID, payload, sig).
func (c *RequestChecker) Check(clientID, payload, sig []byte) (RequestCheck, error) {
	return checkOfRequest(clientID, payload, sig, c)
}

// Key is check.Key(), for a check this checker made.
func (c *RequestChecker) Key(check RequestCheck) Digest {
	b := c.bundleOf(check)
	if b == nil {
		return check.Key()
	}
	if !b.keyed {
		b.key, b.keyed = check.Key(), true
	}
	return b.key
}

// bundleOf returns the remembered bundle whose check is check (the same
// statement, which Check hands out again for every request of the
// bundle, and the same signature), or nil.
func (c *RequestChecker) bundleOf(check RequestCheck) *checkedBundle {
	if !check.Bundled || len(check.Payload) < DigestSize || c.bundles == nil {
		return nil
	}
	var root Digest
	copy(root[:], check.Payload[len(check.Payload)-DigestSize:])
	b := c.bundles[root]
	if b == nil || &b.check.Payload[0] != &check.Payload[0] || !bytes.Equal(b.check.Signature, check.Signature) {
		return nil
	}
	return b
}

// inner is MerkleInner(domain, left, right) for the inner node at level
// (0: the leaves' parents), remembered when domain is that of bundles'
// inner nodes (the only one a checker hashes).
func (c *RequestChecker) inner(domain string, level int, left, right Digest) Digest {
	if c == nil || domain != bundleNodeDomain || level >= len(c.levels) {
		return MerkleInner(domain, left, right)
	}
	ways := &c.levels[level]
	// The slot last filled first: a bundle's requests in order hit it.
	last := (int(c.next[level]) + checkerWays - 1) % checkerWays
	for k := range checkerWays {
		n := &ways[(last+checkerWays-k)%checkerWays]
		if !n.set {
			break // the slots older than an empty one are empty
		}
		if n.left == left && n.right == right {
			return n.node
		}
	}
	c.hashed++
	node := MerkleInner(domain, left, right)
	ways[c.next[level]] = checkedNode{left: left, right: right, node: node, set: true}
	c.next[level] = (c.next[level] + 1) % checkerWays
	return node
}

// bundled returns the check of a bundle signature sig (its 64 bytes) of
// client clientID over a tree of count leaves with root root: the one
// made before for the same bundle, so that Key can tell.
func (c *RequestChecker) bundled(clientID []byte, count uint64, root Digest, sig []byte) RequestCheck {
	if c != nil {
		if b := c.bundles[root]; b != nil && b.count == count && bytes.Equal(b.client, clientID) && bytes.Equal(b.check.Signature, sig) {
			return b.check
		}
	}
	check := RequestCheck{
		Domain:    DomainClientRequestBundle,
		Payload:   BundleStatement(clientID, count, root),
		Signature: sig,
		Bundled:   true,
	}
	if c != nil {
		if c.bundles == nil {
			c.bundles = make(map[Digest]*checkedBundle)
		}
		if len(c.bundles) < maxCheckerBundles {
			c.bundles[root] = &checkedBundle{check: check, client: clientID, count: count}
		}
	}
	return check
}
