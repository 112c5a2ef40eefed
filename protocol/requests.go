package protocol

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

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

type arrival struct {
	key  requestKey
	tick uint64
}

type trackedRequest struct {
	state requestState
	req   ClientRequest
	// size is the request's encoded size (requestSize), what it counts
	// against the byte budgets.
	size int
	// fromClient: a client sent it to this replica (not just a
	// pre-prepare). Only such requests run the view-change timer.
	fromClient bool
}

// requestTracker remembers the client requests this replica knows of and
// has not yet seen committed, and (on the primary) the FIFO queue of those
// waiting for a batch. It holds at most limits.total requests and
// limits.totalBytes encoded bytes. A backup's pending requests are what its
// view-change timer watches.
type requestTracker struct {
	limits trackerLimits
	// The per-client budgets bound the requests waiting to be ordered
	// (queued on the primary, forwarded on a backup), so a client flooding
	// the replica holds at most that much of the queue ahead of everyone
	// else's requests: byClient counts them per client id, byKey and
	// keyBytes per client key (the id's first crypto.ClientKeySize bytes: every
	// session of a key shares its key's budget). Ordered requests do not
	// count: the pipeline bounds them, and a replica that commits a little
	// later than the f+1 replicas a client heard from still holds requests
	// the client no longer counts as outstanding, so counting them would
	// refuse the client's next ones.
	byClient map[string]int
	byKey    map[string]int
	keyBytes map[string]int
	// keyOrdered is, for each key with requests waiting here, the last
	// tick a request of that key was ordered (see keyProgress).
	keyOrdered map[string]uint64
	// bytes is the encoded size of every known request.
	bytes int
	known map[requestKey]*trackedRequest
	// fromClients counts known requests with fromClient set; arrivals
	// lists them in arrival order with the tick they came (entries go
	// stale when a request is forgotten; oldestFromClient skips those).
	fromClients int
	arrivals    []arrival
	queue       []ClientRequest // primary only; entries may be stale (see popBatch)
}

// trackerLimits are the request tracker's bounds (see Config).
type trackerLimits struct {
	total, totalBytes              int
	perClient, perKey, perKeyBytes int
}

// largeRequestBytes: requests above it are large; the primary bounds the
// large bytes it has in flight (see Replica.propose).
const largeRequestBytes = 64 << 10

// requestSize is a request's encoded size as batches count it.
func requestSize(s *wire.Signed) int { return len(s.Payload) + len(s.Signature) + 8 }

func newRequestTracker(l trackerLimits) *requestTracker {
	return &requestTracker{limits: l, byClient: make(map[string]int), byKey: make(map[string]int),
		keyBytes: make(map[string]int), keyOrdered: make(map[string]uint64), known: make(map[requestKey]*trackedRequest)}
}

func (t *requestTracker) insert(key requestKey, tr *trackedRequest) {
	t.known[key] = tr
	t.bytes += tr.size
	if tr.state != stateOrdered {
		t.count(key.client, tr.size)
	}
}

// setState moves a tracked request to state s, keeping the per-client
// counts (of the requests not yet ordered) in step.
func (t *requestTracker) setState(key requestKey, tr *trackedRequest, s requestState) {
	switch {
	case tr.state == stateOrdered && s != stateOrdered:
		t.count(key.client, tr.size)
	case tr.state != stateOrdered && s == stateOrdered:
		t.uncount(key.client, tr.size)
	}
	tr.state = s
}

func (t *requestTracker) count(client string, size int) {
	k := crypto.ClientKeyOf(client)
	t.byClient[client]++
	t.byKey[k]++
	t.keyBytes[k] += size
}

func (t *requestTracker) uncount(client string, size int) {
	if t.byClient[client]--; t.byClient[client] <= 0 {
		delete(t.byClient, client)
	}
	k := crypto.ClientKeyOf(client)
	if t.byKey[k]--; t.byKey[k] <= 0 {
		delete(t.byKey, k)
		delete(t.keyOrdered, k)
	}
	if t.keyBytes[k] -= size; t.keyBytes[k] <= 0 {
		delete(t.keyBytes, k)
	}
}

// noteKeyOrdered records that a request of client's key was ordered at
// tick now, if the key has requests waiting here.
func (t *requestTracker) noteKeyOrdered(client string, now uint64) {
	if k := crypto.ClientKeyOf(client); t.byKey[k] > 0 {
		t.keyOrdered[k] = now
	}
}

// keyProgress returns the last tick a request of client's key was ordered
// while the key had requests waiting here (0 if none).
func (t *requestTracker) keyProgress(client string) uint64 {
	return t.keyOrdered[crypto.ClientKeyOf(client)]
}

// admit reports why a new request of size bytes from client does not fit
// the budgets, or nil.
func (t *requestTracker) admit(client string, size int) error {
	k := crypto.ClientKeyOf(client)
	switch {
	case len(t.known) >= t.limits.total:
		return ErrQueueFull
	case t.bytes+size > t.limits.totalBytes:
		return fmt.Errorf("%w: %d bytes pending", ErrQueueFull, t.bytes)
	case t.byClient[client] >= t.limits.perClient:
		return ErrClientQueueFull
	case t.byKey[k] >= t.limits.perKey:
		return fmt.Errorf("%w: %d requests pending for its key", ErrClientQueueFull, t.byKey[k])
	case t.byKey[k] > 0 && t.keyBytes[k]+size > t.limits.perKeyBytes:
		// A key with nothing pending may always have one request (up to
		// the request size limit) in flight.
		return fmt.Errorf("%w: %d bytes pending for its key", ErrClientQueueFull, t.keyBytes[k])
	}
	return nil
}

func (t *requestTracker) len() int { return len(t.known) }

func (t *requestTracker) queued() int { return len(t.queue) }

// add records a new request: queued on the primary, forwarded on a backup.
// It reports false for a request already known.
func (t *requestTracker) add(req ClientRequest, primary bool, now uint64) (bool, error) {
	key := keyOf(req.Request)
	if tr, ok := t.known[key]; ok {
		if !tr.fromClient {
			tr.fromClient = true
			t.fromClients++
			t.arrivals = append(t.arrivals, arrival{key: key, tick: now})
		}
		return false, nil
	}
	size := requestSize(req.Signed)
	if err := t.admit(key.client, size); err != nil {
		return false, err
	}
	t.fromClients++
	t.arrivals = append(t.arrivals, arrival{key: key, tick: now})
	if primary {
		t.insert(key, &trackedRequest{state: stateQueued, req: req, size: size, fromClient: true})
		t.queue = append(t.queue, req)
	} else {
		t.insert(key, &trackedRequest{state: stateForwarded, req: req, size: size, fromClient: true})
	}
	return true, nil
}

// popBatch removes from the queue the longest prefix that fits maxCount
// requests and maxBytes encoded bytes (at least one request), and marks
// those requests ordered. Large requests (over largeRequestBytes) take
// at most largeAllowance bytes in all, or, with alone, one large request
// of any size: those that do not fit stay queued, in order, for a later
// batch, and the small requests behind them go on.
func (t *requestTracker) popBatch(maxCount, maxBytes int, gate largeGate) (signed []*wire.Signed, reqs []*wire.Request, large int) {
	size, taken := 0, 0
	var kept []ClientRequest
	for _, q := range t.queue {
		tr := t.known[keyOf(q.Request)]
		if tr == nil || tr.state != stateQueued {
			taken++ // ordered meanwhile by another pre-prepare, or forgotten
			continue
		}
		n := tr.size
		if len(signed) >= maxCount || (len(signed) > 0 && size+n > maxBytes) {
			break
		}
		taken++
		if n > largeRequestBytes {
			key := crypto.ClientKeyOf(string(q.Request.ClientId))
			if !gate.takes(key, large, n) {
				kept = append(kept, q)
				continue
			}
			gate.pace.charge(key, n, gate.now)
			large += n
		}
		size += n
		t.setState(keyOf(q.Request), tr, stateOrdered)
		signed = append(signed, q.Signed)
		reqs = append(reqs, q.Request)
	}
	// The held-back requests came from the consumed prefix: they go back
	// at its end, in order, ahead of the rest, without copying the queue.
	start := taken - len(kept)
	copy(t.queue[start:taken], kept)
	clear(t.queue[:start]) // let committed requests be collected
	t.queue = t.queue[start:]
	return signed, reqs, large
}

// proposable reports whether a batch could take a queued request now: a
// small one, or a large one that fits the gate (in-flight bound and pace).
func (t *requestTracker) proposable(gate largeGate) bool {
	for _, q := range t.queue {
		tr := t.known[keyOf(q.Request)]
		if tr == nil || tr.state != stateQueued {
			continue
		}
		if tr.size <= largeRequestBytes || gate.takes(crypto.ClientKeyOf(string(q.Request.ClientId)), 0, tr.size) {
			return true
		}
	}
	return false
}

// largeGate is what decides whether a batch may take a large request: the
// bytes MaxLargeInFlightBytes leaves (allowance), whether nothing large is
// in flight (alone: one large request of any size fits), and the keys'
// pace at tick now.
type largeGate struct {
	allowance int
	alone     bool
	pace      *largePace
	now       uint64
}

// takes reports whether a large request of n bytes from client key key
// may join a batch that already took taken large bytes: it fits beside
// them and its key's pace admits it.
func (g largeGate) takes(key string, taken, n int) bool {
	fits := taken+n <= g.allowance || (g.alone && taken == 0)
	return fits && g.pace.admits(key, g.now)
}

// ordered marks requests as included in an accepted pre-prepare.
func (t *requestTracker) ordered(batch []*wire.Signed, reqs []*wire.Request) {
	for i, req := range reqs {
		key := keyOf(req)
		if tr, ok := t.known[key]; ok {
			t.setState(key, tr, stateOrdered)
		} else if len(t.known) < t.limits.total && i < len(batch) {
			// Ordered by the primary: tracked whatever the per-client and
			// byte bounds (the batch is bounded and it commits or is
			// re-proposed).
			t.insert(key, &trackedRequest{state: stateOrdered, req: ClientRequest{Signed: batch[i], Request: req}, size: requestSize(batch[i])})
		}
	}
}

// committed forgets requests that were committed.
func (t *requestTracker) committed(reqs []*wire.Request) {
	for _, req := range reqs {
		t.forget(keyOf(req))
	}
}

func (t *requestTracker) forget(key requestKey) {
	if tr, ok := t.known[key]; ok {
		if tr.fromClient {
			t.fromClients--
		}
		delete(t.known, key)
		t.bytes -= tr.size
		if tr.state != stateOrdered {
			t.uncount(key.client, tr.size)
		}
	}
}

// unordered forgets requests that were only known from a pre-prepare that
// lost its sequence to another batch; those a client sent stay pending.
func (t *requestTracker) unordered(reqs []*wire.Request) {
	for _, req := range reqs {
		key := keyOf(req)
		if tr, ok := t.known[key]; ok && !tr.fromClient {
			t.forget(key)
		} else if ok {
			t.setState(key, tr, stateForwarded)
		}
	}
}

// reset turns every request that is not committed back into a pending
// one after a view change: the new primary queues them all (in a
// deterministic order: by client, then number), a backup waits for them.
// Re-proposed batches mark theirs ordered again afterwards.
func (t *requestTracker) reset(primary bool) {
	t.queue = t.queue[:0]
	keys := make([]requestKey, 0, len(t.known))
	for k := range t.known {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		tr := t.known[k]
		if primary {
			t.setState(k, tr, stateQueued)
			t.queue = append(t.queue, tr.req)
		} else {
			t.setState(k, tr, stateForwarded)
		}
	}
}

// oldestFromClient returns the oldest pending request a client sent to
// this replica, with its arrival tick.
func (t *requestTracker) oldestFromClient() (arrival, bool) {
	for len(t.arrivals) > 0 {
		a := t.arrivals[0]
		if tr, ok := t.known[a.key]; ok && tr.fromClient {
			return a, true
		}
		t.arrivals[0] = arrival{}
		t.arrivals = t.arrivals[1:]
	}
	return arrival{}, false
}

// fromClientRequests returns up to limit pending requests that clients
// sent to this replica, in a deterministic order.
func (t *requestTracker) fromClientRequests(limit int) []ClientRequest {
	keys := make([]requestKey, 0, t.fromClients)
	for k, tr := range t.known {
		if tr.fromClient && tr.state == stateForwarded {
			keys = append(keys, k)
		}
	}
	sortKeys(keys)
	out := make([]ClientRequest, 0, min(limit, len(keys)))
	for _, k := range keys[:min(limit, len(keys))] {
		out = append(out, t.known[k].req)
	}
	return out
}

func sortKeys(keys []requestKey) {
	slices.SortFunc(keys, func(a, b requestKey) int {
		if c := strings.Compare(a.client, b.client); c != 0 {
			return c
		}
		return cmp.Compare(a.number, b.number)
	})
}

// prune forgets every tracked request done reports as executed (or too
// old to execute), and returns how many it forgot.
func (t *requestTracker) prune(done func(clientID []byte, number uint64) bool) int {
	n := 0
	for key := range t.known {
		if done([]byte(key.client), key.number) {
			t.forget(key)
			n++
		}
	}
	return n
}
