package client

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/crypto/cryptotest"
)

// TestConcurrentRequestsShareOneSignature: calls that queue while a
// signing is under way are signed as one bundle, each signature field
// verifies for its own payload, and a call alone gets a plain signature.
func TestConcurrentRequestsShareOneSignature(t *testing.T) {
	signer := crypto.NewSigner(cryptotest.Key(t, 3), "c")
	id, err := crypto.ClientID(signer.Public(), []byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	var s requestSigner
	verifies := func(payload, sig []byte) bool {
		c, err := crypto.CheckOfRequest(id, payload, sig)
		return err == nil && crypto.Verify(signer.Public(), "c", c.Domain, c.Payload, c.Signature)
	}
	alone := []byte("alone")
	aloneSig := s.sign(signer, id, alone)
	if len(aloneSig) != 64 || !verifies(alone, aloneSig) {
		t.Fatalf("a lone call: %d-byte signature", len(aloneSig))
	}

	// Hold the signer busy, as a call signing would, and queue calls.
	s.mu.Lock()
	s.busy = true
	s.mu.Unlock()
	const calls = 9
	sigs := make([][]byte, calls)
	payloads := make([][]byte, calls)
	var wg sync.WaitGroup
	for i := range calls {
		payloads[i] = []byte(fmt.Sprintf("request %d", i))
		wg.Go(func() { sigs[i] = s.sign(signer, id, payloads[i]) })
	}
	for queued := 0; queued < calls; {
		s.mu.Lock()
		queued = len(s.queue)
		s.mu.Unlock()
		runtime.Gosched()
	}
	// The signing under way ends: it hands the queue to its first call.
	s.mu.Lock()
	s.queue[0].ready <- struct{}{}
	s.mu.Unlock()
	wg.Wait()
	for i := range calls {
		if !verifies(payloads[i], sigs[i]) {
			t.Fatalf("call %d: signature does not verify", i)
		}
	}
	// The Ed25519 signatures made: the first 64 bytes of each field.
	signatures := map[string]bool{string(aloneSig[:64]): true}
	for _, sig := range sigs {
		signatures[string(sig[:64])] = true
	}
	if signed := len(sigs) + 1; signed != calls+1 || len(signatures) != 2 {
		t.Fatalf("%d requests signed with %d signatures, want %d with 2", signed, len(signatures), calls+1)
	}
	if s.busy || len(s.queue) != 0 {
		t.Fatalf("signer left busy=%v with %d queued", s.busy, len(s.queue))
	}
}
