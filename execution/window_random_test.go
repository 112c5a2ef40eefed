package execution

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

// clientModel is a reference model of one client: the client library's
// view (issued and outstanding numbers, kept within ClientWindow of the
// highest issued) and the spec's window rule (H and the executed numbers
// with their first results).
type clientModel struct {
	id          []byte
	issued      uint64
	outstanding map[uint64]bool
	high        uint64
	results     map[uint64][]byte // every executed number, never evicted
	lastSeq     uint64            // the last batch that executed a request
}

func (m *clientModel) tooOld(n uint64) bool {
	return m.high >= ClientWindow && n <= m.high-ClientWindow
}

func (m *clientModel) status(n uint64) RequestStatus {
	if m.tooOld(n) {
		return RequestTooOld
	}
	if _, ok := m.results[n]; ok {
		return RequestExecuted
	}
	return RequestNew
}

// canIssue reports whether the client library may issue n: every
// outstanding number must stay above n-ClientWindow.
func (m *clientModel) canIssue(n uint64) bool {
	for o := range m.outstanding {
		if n >= ClientWindow && o <= n-ClientWindow {
			return false
		}
	}
	return true
}

// pick returns a random key of set (in a deterministic order).
func pick(rng *rand.Rand, set map[uint64]bool, upTo uint64) (uint64, bool) {
	var keys []uint64
	for n := range upTo + 1 {
		if set[n] {
			keys = append(keys, n)
		}
	}
	if len(keys) == 0 {
		return 0, false
	}
	return keys[rng.Intn(len(keys))], true
}

// modelDigest computes the reply-cache digest from the model alone.
func modelDigest(models []*clientModel) adHash {
	var acc adHash
	for _, m := range models {
		for n, result := range m.results {
			if !m.tooOld(n) {
				acc.add(replyHash(string(m.id), n, result))
			}
		}
		if len(m.results) > 0 {
			acc.add(windowSeqHash(m.id, m.lastSeq))
		}
	}
	return acc
}

func TestExecutorWindowRandomInterleavings(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runRandomInterleaving(t, seed) })
	}
}

func runRandomInterleaving(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	counts := make(map[string]int)
	r := openCounting(t, dir, counts)
	defer func() { r.db.Close() }()
	models := make([]*clientModel, 3)
	for i := range models {
		models[i] = &clientModel{id: fmt.Appendf(nil, "client-%d", i), outstanding: make(map[uint64]bool), results: make(map[uint64][]byte)}
	}
	const batches = 300
	send := func(reqs []Request, m *clientModel, n uint64) []Request {
		return append(reqs, Request{ClientID: m.id, RequestNumber: n, Operation: uniqueOp(m.id, n)})
	}
	for seq := uint64(1); seq <= batches; seq++ {
		var reqs []Request
		for range rng.Intn(10) {
			m := models[rng.Intn(len(models))]
			switch x := rng.Intn(10); {
			case x < 4: // issue a new number (sometimes skipping some) and maybe send it now
				n := m.issued + 1 + uint64(rng.Intn(3))
				if m.canIssue(n) {
					m.issued = n
					m.outstanding[n] = true
					if rng.Intn(2) == 0 {
						reqs = send(reqs, m, n)
					}
				}
			case x < 8: // (re)send an outstanding number, in any order
				if n, ok := pick(rng, m.outstanding, m.issued); ok {
					reqs = send(reqs, m, n)
				}
			default: // any number up to 2*ClientWindow below the highest issued
				low := uint64(0)
				if m.issued > 2*ClientWindow {
					low = m.issued - 2*ClientWindow
				}
				reqs = send(reqs, m, low+uint64(rng.Int63n(int64(m.issued-low+1))))
			}
		}
		// Expected outcome per the spec, request by request.
		byID := make(map[string]*clientModel)
		for _, m := range models {
			byID[string(m.id)] = m
		}
		var want []bool // per expected reply: newly executed (else a cached reply)
		var newly []Request
		for _, req := range reqs {
			m := byID[string(req.ClientID)]
			switch m.status(req.RequestNumber) {
			case RequestTooOld:
				if m.outstanding[req.RequestNumber] {
					t.Fatalf("seq %d: outstanding request %d of %s became too old", seq, req.RequestNumber, m.id)
				}
			case RequestExecuted:
				want = append(want, false)
			default:
				want = append(want, true)
				m.results[req.RequestNumber] = nil // filled from the reply below
				m.high = max(m.high, req.RequestNumber)
				m.lastSeq = seq
				newly = append(newly, req)
			}
		}
		replies := apply(t, r.exe, seq, reqs...)
		if len(replies) != len(want) {
			t.Fatalf("seq %d: %d replies, want %d", seq, len(replies), len(want))
		}
		for i, reply := range replies {
			m := byID[string(reply.ClientID)]
			// A duplicate's result was recorded earlier (possibly by an
			// earlier reply of this batch).
			if want[i] {
				m.results[reply.RequestNumber] = reply.Result
				delete(m.outstanding, reply.RequestNumber)
			} else if cached := m.results[reply.RequestNumber]; !bytes.Equal(reply.Result, cached) {
				t.Fatalf("seq %d: duplicate %d of %s got %x, want the cached %x", seq, reply.RequestNumber, m.id, reply.Result, cached)
			}
		}
		for _, req := range newly {
			if c := counts[string(req.Operation)]; c != 1 {
				t.Fatalf("seq %d: request %d of %s executed %d times", seq, req.RequestNumber, req.ClientID, c)
			}
		}
		if got := r.exe.cacheAcc; got != recomputeReplyDigest(r.exe) || got != modelDigest(models) {
			t.Fatalf("seq %d: incremental reply-cache digest differs from a recomputation", seq)
		}
		for _, m := range models {
			if got := r.exe.LastRequestNumber(m.id); got != m.high {
				t.Fatalf("seq %d: LastRequestNumber(%s) = %d, want %d", seq, m.id, got, m.high)
			}
			if w := r.exe.clients[string(m.id)]; w != nil && len(w.entries) > ClientWindow {
				t.Fatalf("seq %d: %s has %d cached entries", seq, m.id, len(w.entries))
			}
			for range 4 {
				n := m.high + 2 - uint64(rng.Intn(int(min(m.high+2, ClientWindow+4))+1))
				if got, want := r.exe.Status(m.id, n), m.status(n); got != want {
					t.Fatalf("seq %d: Status(%s, %d) = %v, want %v", seq, m.id, n, got, want)
				}
			}
		}
		if seq == batches/2 { // reopen midway: everything is restored
			digest := r.exe.StateDigest()
			if err := r.db.Close(); err != nil {
				t.Fatal(err)
			}
			r = openCounting(t, dir, counts)
			if r.exe.StateDigest() != digest || r.exe.cacheAcc != modelDigest(models) {
				t.Fatalf("seq %d: digest changed across reopen", seq)
			}
		}
	}
	// Every outstanding request executes exactly once when finally sent.
	var reqs []Request
	for _, m := range models {
		for n := range m.issued + 1 {
			if m.outstanding[n] {
				reqs = append(reqs, Request{ClientID: m.id, RequestNumber: n, Operation: uniqueOp(m.id, n)})
			}
		}
	}
	if replies := apply(t, r.exe, batches+1, reqs...); len(replies) != len(reqs) {
		t.Fatalf("draining %d outstanding requests gave %d replies", len(reqs), len(replies))
	}
	for _, req := range reqs {
		if c := counts[string(req.Operation)]; c != 1 {
			t.Fatalf("outstanding request %d of %s executed %d times", req.RequestNumber, req.ClientID, c)
		}
	}
	for op, c := range counts {
		if c != 1 {
			t.Fatalf("operation %q executed %d times", op, c)
		}
	}
}
