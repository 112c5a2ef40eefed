package client

import (
	"runtime"
	"sync"

	"github.com/pbftnode/pbftnode/crypto"
)

// requestSigner signs the requests of concurrent calls together. A call
// that finds no signing under way signs its own request at once (a plain
// signature: nothing waits for company); calls that arrive while a signing
// is under way queue, and when it ends the first of them signs every
// queued request in bundles (crypto.SignRequests: one Ed25519 signature
// over a Merkle tree of up to MaxBundle payloads, which a replica checks
// once for all of them). A request therefore waits at most for the signing before
// its own, and a client whose callers are many (a benchmark's logical
// clients, a gateway) makes about one signature per round of replies
// instead of one per request.
type requestSigner struct {
	mu    sync.Mutex
	queue []*pendingSignature // waiting; non-empty only while busy
	busy  bool                // a call is signing
}

// pendingSignature is one call's request in the queue.
type pendingSignature struct {
	payload []byte
	sig     []byte
	// ready is sent on when sig is set, or when the call must sign the
	// queue itself (sig still nil).
	ready chan struct{}
}

// sign returns the signature field for payload, an encoded wire.Request
// of the client clientID whose key signer holds (the same on every call).
// Safe for concurrent use.
func (s *requestSigner) sign(signer *crypto.Signer, clientID, payload []byte) []byte {
	me := &pendingSignature{payload: payload, ready: make(chan struct{}, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, me)
	if s.busy {
		s.mu.Unlock()
		<-me.ready
		if me.sig != nil {
			return me.sig
		}
		s.mu.Lock() // handed the queue: sign it
	}
	s.busy = true
	s.mu.Unlock()
	// Let the calls that are ready to run (woken by the same round of
	// replies, say) reach the queue first: on few cores they would
	// otherwise wait for a processor until this signing is over.
	runtime.Gosched()
	s.mu.Lock()
	take := s.queue // SignRequests splits it into bundles of MaxBundle
	s.queue = nil
	s.mu.Unlock()

	payloads := make([][]byte, len(take))
	for i, p := range take {
		payloads[i] = p.payload
	}
	sigs := crypto.SignRequests(signer, clientID, payloads)
	for i, p := range take {
		p.sig = sigs[i]
		if p != me {
			p.ready <- struct{}{}
		}
	}

	s.mu.Lock()
	if len(s.queue) > 0 {
		s.queue[0].ready <- struct{}{} // its sig is nil: it signs next
	} else {
		s.busy = false
	}
	s.mu.Unlock()
	return me.sig
}
