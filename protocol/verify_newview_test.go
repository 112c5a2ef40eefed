package protocol

import (
	"crypto/ed25519"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
)

// countingPool is a SignaturePool that counts the signatures it checks.
type countingPool struct {
	v    *crypto.Verifier
	jobs atomic.Int64
}

func (p *countingPool) Verifier() *crypto.Verifier { return p.v }

func (p *countingPool) VerifyAll(jobs []crypto.VerifyJob) []bool {
	p.jobs.Add(int64(len(jobs)))
	return p.v.VerifyBatch(jobs)
}

// TestNewViewReusesVerifiedViewChanges: a NEW-VIEW's nested signatures go
// through the signature pool together, and those of the VIEW-CHANGEs the
// verifier already verified (the ones it received before the NEW-VIEW) are
// not checked again: under load each VIEW-CHANGE carries up to WindowSize
// prepared certificates, and re-verifying a quorum of them made every
// backup take hundreds of milliseconds to accept a NEW-VIEW. The verdict
// is the same either way.
func TestNewViewReusesVerifiedViewChanges(t *testing.T) {
	c := newCluster(t, 4, func(cfg *Config) { cfg.CheckpointInterval = 64; cfg.MaxBatchSize = 1 })
	submitN(t, c, 0, 12, 1)
	c.run()
	var viewChanges [][]byte
	var newView []byte
	c.dropFrame = func(from, to uint32, kind Kind, frame []byte) bool {
		switch {
		case kind == KindViewChange && to == 1:
			viewChanges = append(viewChanges, frame)
		case kind == KindNewView && to == 2:
			newView = frame
		}
		return false
	}
	c.replicas[0].abdicate()
	c.run()
	if newView == nil || len(viewChanges) < 2 {
		t.Fatalf("no view change happened: %d VIEW-CHANGEs to replica 1, NEW-VIEW seen %v", len(viewChanges), newView != nil)
	}
	pubs := make([]ed25519.PublicKey, len(c.signers))
	for i := range pubs {
		pubs[i] = testKey(byte(i)).Public().(ed25519.PublicKey)
	}
	newVerifier := func() (*MessageVerifier, *countingPool) {
		pool := &countingPool{v: crypto.NewVerifier(testCluster)}
		return NewMessageVerifier(testCluster, pubs, nil, pool, 0), pool
	}

	// A verifier that sees the NEW-VIEW first checks every signature in
	// it, on the pool.
	cold, coldPool := newVerifier()
	want, err := cold.ReplicaFrame(newView)
	if err != nil {
		t.Fatal(err)
	}
	nested := 0
	for _, vc := range want.NewView.ViewChanges {
		nested++ // the VIEW-CHANGE's own signature
		for _, pc := range vc.Prepared {
			nested += 1 + len(pc.Prepares)
		}
		nested += len(vc.Stable.Proof)
	}
	headers := len(want.NewView.PrePrepares)
	if headers == 0 || nested <= len(want.NewView.ViewChanges) {
		t.Fatalf("the NEW-VIEW re-proposes %d sequences with %d nested signatures: the test needs prepared certificates", headers, nested)
	}
	if got := coldPool.jobs.Load(); got != int64(1+nested+headers) {
		t.Fatalf("a NEW-VIEW seen first: %d signatures checked on the pool, want %d (its own, %d in its VIEW-CHANGEs, %d headers)",
			got, 1+nested+headers, nested, headers)
	}

	// One that received the VIEW-CHANGEs first checks only the NEW-VIEW's
	// own signature and its headers.
	warm, warmPool := newVerifier()
	for _, f := range viewChanges {
		if _, err := warm.ReplicaFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	before := warmPool.jobs.Load()
	got, err := warm.ReplicaFrame(newView)
	if err != nil {
		t.Fatal(err)
	}
	checked := warmPool.jobs.Load() - before
	vouched := 0
	for _, vc := range got.NewView.ViewChanges {
		if vc.From != 1 { // replica 1 does not receive its own
			vouched++
		}
	}
	if vouched == 0 {
		t.Fatal("no VIEW-CHANGE in the NEW-VIEW was received by replica 1")
	}
	if checked >= int64(1+nested+headers) {
		t.Fatalf("after its VIEW-CHANGEs: the NEW-VIEW cost %d signatures, no fewer than the %d of a cold verifier", checked, 1+nested+headers)
	}
	if !reflect.DeepEqual(got.NewView, want.NewView) {
		t.Fatal("the NEW-VIEW verified after its VIEW-CHANGEs decodes differently")
	}
}
