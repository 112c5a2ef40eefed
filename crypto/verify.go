package crypto

import (
	"crypto/ed25519"
	"sync"

	voied "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Verification rules. Every signature in pbftnode is checked under one set
// of rules: ZIP-215's (github.com/oasisprotocol/curve25519-voi's
// VerifyOptionsZIP_215, as CometBFT uses them) with one restriction. ZIP-215
// uses the cofactored verification equation, requires S to be canonical
// (below the group order) and accepts non-canonical encodings of A and R:
// these are the rules under which single and batch verification agree, so
// a replica's verdict on a signature never depends on which other
// signatures it happened to check in the same batch, and every correct
// replica accepts exactly the same signatures. The restriction: public keys
// of small order are refused (ZIP-215 accepts them, and then every message
// has a valid signature, e.g. all zeros). It is a check of the key alone,
// made the same way by single and batch verification.
//
// Every honestly made Ed25519 signature (crypto/ed25519's, this package's
// Signer's) verifies under these rules. They differ from
// crypto/ed25519.Verify only on signatures crafted with small-order or
// non-canonical points, so all replicas of a cluster must run them: a
// cluster never mixes builds that verify with crypto/ed25519 with builds
// that verify with these rules.
var verifyOptions = &voied.Options{Verify: &voied.VerifyOptions{
	AllowSmallOrderA:   false,
	AllowSmallOrderR:   true,
	AllowNonCanonicalA: true,
	AllowNonCanonicalR: true,
}}

// VerifyJob is one signature check: is Signature PublicKey's signature over
// SignedBytes(Domain, clusterID, Payload), with the cluster ID of the
// Verifier (or verification pool) that runs it.
type VerifyJob struct {
	PublicKey ed25519.PublicKey
	Domain    string
	Payload   []byte
	Signature []byte
}

// MaxVerifyBatch is the most signatures checked in one batch verification.
// Larger sets of jobs are split into batches of at most this size (and
// spread over a verification pool's workers). Beyond ~64 the gain per signature is
// small, while smaller batches let more workers share a large set.
const MaxVerifyBatch = 64

// DefaultKeyCacheSize is how many expanded public keys a Verifier keeps.
// An expanded key is about 1.5 KiB.
const DefaultKeyCacheSize = 4096

// Verifier checks Ed25519 signatures for one cluster under the ZIP-215
// rules. It keeps the expanded (precomputed) form of the public keys it
// saw most recently, which makes each later verification by the same key
// faster, and checks sets of signatures with batch verification. Its
// verdicts are exactly Verify's, whatever the batching. It is safe for
// concurrent use.
type Verifier struct {
	clusterID string
	keys      *keyCache
	// batches recycles batch verifiers (and their entry arrays).
	batches sync.Pool
}

// NewVerifier returns a Verifier for the cluster clusterID.
func NewVerifier(clusterID string) *Verifier {
	return &Verifier{clusterID: clusterID, keys: newKeyCache(DefaultKeyCacheSize)}
}

// ClusterID returns the cluster ID the verifier checks signatures for.
func (v *Verifier) ClusterID() string { return v.clusterID }

// Verify reports whether job's signature is valid: true exactly when the
// package-level Verify returns true for it under v's cluster ID.
func (v *Verifier) Verify(job *VerifyJob) bool {
	if len(job.PublicKey) != ed25519.PublicKeySize || len(job.Signature) != ed25519.SignatureSize {
		return false
	}
	key := v.keys.get(job.PublicKey)
	if key == nil {
		return false
	}
	return voied.VerifyExpandedWithOptions(key, SignedBytes(job.Domain, v.clusterID, job.Payload), job.Signature, verifyOptions)
}

// VerifyBatch checks jobs on the calling goroutine and returns one result
// per job, in order: true exactly when Verify would return true for that
// job. Sets of more than one job are checked with batch verification, in
// batches of at most MaxVerifyBatch; when a batch fails, each of its
// signatures is checked on its own to find the bad ones, so one bad
// signature costs its batch about what checking it singly would have.
func (v *Verifier) VerifyBatch(jobs []VerifyJob) []bool {
	results := make([]bool, len(jobs))
	v.VerifyInto(jobs, results)
	return results
}

// VerifyInto is VerifyBatch writing the results into results, which must
// be as long as jobs (a verification pool hands each worker a part of one
// results slice).
func (v *Verifier) VerifyInto(jobs []VerifyJob, results []bool) {
	for start := 0; start < len(jobs); start += MaxVerifyBatch {
		end := min(start+MaxVerifyBatch, len(jobs))
		v.verifyChunk(jobs[start:end], results[start:end])
	}
}

// verifyChunk checks at most MaxVerifyBatch jobs with one batch
// verification.
func (v *Verifier) verifyChunk(jobs []VerifyJob, results []bool) {
	if len(jobs) == 1 {
		results[0] = v.Verify(&jobs[0])
		return
	}
	batch, _ := v.batches.Get().(*voied.BatchVerifier)
	if batch == nil {
		batch = voied.NewBatchVerifierWithCapacity(MaxVerifyBatch)
	}
	defer v.batches.Put(batch)
	batch.Reset()
	// index[k] is the job of the batch's k-th entry: malformed jobs are
	// false without entering the batch, so they cannot spoil it.
	index := make([]int, 0, len(jobs))
	for i := range jobs {
		job := &jobs[i]
		results[i] = false
		if len(job.PublicKey) != ed25519.PublicKeySize || len(job.Signature) != ed25519.SignatureSize {
			continue
		}
		key := v.keys.get(job.PublicKey)
		if key == nil {
			continue
		}
		batch.AddExpandedWithOptions(key, SignedBytes(job.Domain, v.clusterID, job.Payload), job.Signature, verifyOptions)
		index = append(index, i)
	}
	if len(index) == 0 {
		return
	}
	// Verify uses crypto/rand for the batch's random coefficients; it
	// checks every entry singly when the batch equation fails.
	_, valid := batch.Verify(nil)
	for k, i := range index {
		results[i] = valid[k]
	}
}

// keyCache maps public keys to their expanded form, remembering at most
// capacity keys (the oldest is evicted first).
type keyCache struct {
	mu       sync.RWMutex
	entries  map[[ed25519.PublicKeySize]byte]*voied.ExpandedPublicKey
	order    [][ed25519.PublicKeySize]byte // ring buffer, oldest at oldest
	oldest   int
	capacity int
}

func newKeyCache(capacity int) *keyCache {
	return &keyCache{
		entries:  make(map[[ed25519.PublicKeySize]byte]*voied.ExpandedPublicKey),
		capacity: max(capacity, 1),
	}
}

// get returns pub's expanded form, or nil if pub is not a point encoding
// (no signature by it is valid). pub must be PublicKeySize bytes.
func (c *keyCache) get(pub []byte) *voied.ExpandedPublicKey {
	k := [ed25519.PublicKeySize]byte(pub)
	c.mu.RLock()
	x, ok := c.entries[k]
	c.mu.RUnlock()
	if ok {
		return x
	}
	x, err := voied.NewExpandedPublicKey(voied.PublicKey(pub))
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.entries[k]; ok {
		return prev
	}
	if len(c.order) < c.capacity {
		c.order = append(c.order, k)
	} else {
		delete(c.entries, c.order[c.oldest])
		c.order[c.oldest] = k
		c.oldest = (c.oldest + 1) % c.capacity
	}
	c.entries[k] = x
	return x
}
