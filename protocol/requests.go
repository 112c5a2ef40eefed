package protocol

import "github.com/pbftnode/pbftnode/wire"

// requestKey identifies a client request: client id plus request number.
type requestKey struct {
	client string
	number uint64
}

func keyOf(req *wire.Request) requestKey {
	return requestKey{client: string(req.ClientId), number: req.RequestNumber}
}

type requestState uint8

const (
	stateQueued    requestState = iota + 1 // primary: waiting for a batch
	stateForwarded                         // backup: relayed to the primary
	stateOrdered                           // in an accepted pre-prepare, not yet committed
)

// requestTracker remembers the client requests this replica knows of and
// has not yet seen committed, and (on the primary) the FIFO queue of those
// waiting for a batch. It holds at most limit requests.
type requestTracker struct {
	limit int
	known map[requestKey]requestState
	queue []ClientRequest // primary only; entries may be stale (see pop)
}

func newRequestTracker(limit int) *requestTracker {
	return &requestTracker{limit: limit, known: make(map[requestKey]requestState)}
}

func (t *requestTracker) len() int { return len(t.known) }

func (t *requestTracker) queued() int { return len(t.queue) }

// add records a new request: queued on the primary, forwarded on a backup.
// It reports false for a request already known.
func (t *requestTracker) add(req ClientRequest, primary bool) (bool, error) {
	key := keyOf(req.Request)
	if _, ok := t.known[key]; ok {
		return false, nil
	}
	if len(t.known) >= t.limit {
		return false, ErrQueueFull
	}
	if primary {
		t.known[key] = stateQueued
		t.queue = append(t.queue, req)
	} else {
		t.known[key] = stateForwarded
	}
	return true, nil
}

// popBatch removes from the queue the longest prefix that fits maxCount
// requests and maxBytes encoded bytes (at least one request), and marks
// those requests ordered.
func (t *requestTracker) popBatch(maxCount, maxBytes int) ([]*wire.Signed, []*wire.Request) {
	var signed []*wire.Signed
	var reqs []*wire.Request
	size, taken := 0, 0
	for _, q := range t.queue {
		key := keyOf(q.Request)
		if t.known[key] != stateQueued {
			taken++ // ordered meanwhile by another pre-prepare, or forgotten
			continue
		}
		n := len(q.Signed.Payload) + len(q.Signed.Signature) + 8
		if len(signed) >= maxCount || (len(signed) > 0 && size+n > maxBytes) {
			break
		}
		size += n
		taken++
		t.known[key] = stateOrdered
		signed = append(signed, q.Signed)
		reqs = append(reqs, q.Request)
	}
	clear(t.queue[:taken]) // let committed requests be collected
	t.queue = t.queue[taken:]
	return signed, reqs
}

// ordered marks requests as included in an accepted pre-prepare.
func (t *requestTracker) ordered(reqs []*wire.Request) {
	for _, req := range reqs {
		key := keyOf(req)
		if _, ok := t.known[key]; ok || len(t.known) < t.limit {
			t.known[key] = stateOrdered
		}
	}
}

// committed forgets requests that were committed.
func (t *requestTracker) committed(reqs []*wire.Request) {
	for _, req := range reqs {
		delete(t.known, keyOf(req))
	}
}
