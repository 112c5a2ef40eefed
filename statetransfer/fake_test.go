package statetransfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/pbftnode/pbftnode/wire"
)

// lastKey holds a state's sequence, as the executor's e/last does.
const lastKey = "~last"

// snap is an in-memory Snapshot.
type snap struct {
	seq     uint64
	entries []*wire.KeyValue // in key order
	chunks  int              // Chunk calls
}

// state returns a snapshot at seq of n entries whose values depend on salt.
func state(seq uint64, n int, salt string) *snap {
	s := &snap{seq: seq}
	for i := range n {
		s.entries = append(s.entries, &wire.KeyValue{Key: fmt.Appendf(nil, "k%03d", i), Value: fmt.Appendf(nil, "v%d%s", i, salt)})
	}
	s.entries = append(s.entries, &wire.KeyValue{Key: []byte(lastKey), Value: binary.BigEndian.AppendUint64(nil, seq)})
	return s
}

func (s *snap) Sequence() uint64 { return s.seq }

func (s *snap) Chunk(start []byte, maxBytes int) ([]*wire.KeyValue, []byte, error) {
	s.chunks++
	i := sort.Search(len(s.entries), func(i int) bool { return bytes.Compare(s.entries[i].Key, start) >= 0 })
	var out []*wire.KeyValue
	size := 0
	for ; i < len(s.entries) && (len(out) == 0 || size < maxBytes); i++ {
		out = append(out, s.entries[i])
		size += len(s.entries[i].Key) + len(s.entries[i].Value)
	}
	var next []byte
	if i < len(s.entries) {
		next = s.entries[i].Key
	}
	return out, next, nil
}

// digest is the digest the restorer computes for a state.
func digest(entries []*wire.KeyValue) [32]byte {
	h := sha256.New()
	for _, e := range entries {
		h.Write(e.Key)
		h.Write([]byte{0})
		h.Write(e.Value)
		h.Write([]byte{0})
	}
	return [32]byte(h.Sum(nil))
}

// restorer is a fake executor restore side with the executor's checks:
// keys strictly increasing, none called "bad", digest compared on finish.
type restorer struct {
	state      []*wire.KeyValue // installed (nil during a restore)
	restoring  []*wire.KeyValue
	inProgress bool
	failed     bool
	last       uint64
	aborts     int
	begins     int
}

var errNoRestore = errors.New("no restore in progress")

func (r *restorer) RestoreBegin() error {
	r.begins++
	r.inProgress, r.failed, r.restoring, r.state, r.last = true, false, nil, nil, 0
	return nil
}

func (r *restorer) RestoreChunk(entries []*wire.KeyValue) error {
	if !r.inProgress || r.failed {
		return errNoRestore
	}
	for _, e := range entries {
		if string(e.Key) == "bad" || (len(r.restoring) > 0 && bytes.Compare(e.Key, r.restoring[len(r.restoring)-1].Key) <= 0) {
			r.failed = true
			return fmt.Errorf("bad key %q", e.Key)
		}
		r.restoring = append(r.restoring, e)
	}
	return nil
}

func (r *restorer) finish(want *[32]byte) ([32]byte, error) {
	if !r.inProgress || r.failed {
		return [32]byte{}, errNoRestore
	}
	d := digest(r.restoring)
	if want != nil && d != *want {
		r.failed = true
		return [32]byte{}, errors.New("digest mismatch")
	}
	r.state, r.restoring, r.inProgress, r.last = r.restoring, nil, false, 0
	for _, e := range r.state {
		if string(e.Key) == lastKey {
			r.last = binary.BigEndian.Uint64(e.Value)
		}
	}
	return d, nil
}

func (r *restorer) RestoreFinish() ([32]byte, error) { return r.finish(nil) }

func (r *restorer) RestoreFinishExpect(d [32]byte) ([32]byte, error) { return r.finish(&d) }

func (r *restorer) RestoreAbort() error {
	if !r.inProgress {
		return errNoRestore
	}
	r.aborts++
	r.inProgress, r.restoring, r.last = false, nil, 0
	return nil
}

func (r *restorer) LastExecuted() uint64 { return r.last }

// observer records the Fetcher's events.
type observer struct {
	started   int
	rejected  []string
	entries   int
	installed []uint64
}

func (o *observer) Started(Target)              { o.started++ }
func (o *observer) Rejected(reason string)      { o.rejected = append(o.rejected, reason) }
func (o *observer) Received(entries, _ int)     { o.entries += entries }
func (o *observer) Installed(seq uint64, _ int) { o.installed = append(o.installed, seq) }

type request struct {
	to  uint32
	req *wire.StateRequest
}

// cluster is a fetching replica and its peers' snapshots.
type cluster struct {
	t     *testing.T
	f     *Fetcher
	r     *restorer
	obs   *observer
	snaps map[uint32][]*snap // what each peer serves
	exact bool               // peers look the requested sequence up exactly
	sent  []request          // requests not yet answered
	// tamper, when set, may change a chunk before it is delivered.
	tamper func(from uint32, c *wire.StateChunk)
	// inFlight are chunks served but not yet delivered (a window's rest).
	inFlight []served
	// rounds counts the requests answered: round trips.
	rounds int
}

type served struct {
	from  uint32
	chunk *wire.StateChunk
}

const (
	testIdle       = 5
	testBackoff    = 2
	testMaxBackoff = 16
)

func newCluster(t *testing.T, exact bool) *cluster {
	return newClusterWith(t, exact, Config{})
}

// newClusterWith is newCluster with cfg's Window and KeepTarget.
func newClusterWith(t *testing.T, exact bool, cfg Config) *cluster {
	c := &cluster{t: t, r: &restorer{}, obs: &observer{}, snaps: map[uint32][]*snap{}, exact: exact}
	c.f = New(Config{IdleTicks: testIdle, BackoffTicks: testBackoff, MaxBackoffTicks: testMaxBackoff, Restorer: c.r, Observer: c.obs,
		Window: cfg.Window, KeepTarget: cfg.KeepTarget,
		Request: func(to uint32, req *wire.StateRequest) { c.sent = append(c.sent, request{to, req}) }})
	return c
}

// answer delivers the next chunk of a window in flight, or else serves
// the oldest pending request (its whole window, as ServeChunks does) and
// delivers its first chunk.
func (c *cluster) answer() (uint64, bool) {
	c.t.Helper()
	if len(c.inFlight) == 0 {
		if len(c.sent) == 0 {
			c.t.Fatal("no request pending")
		}
		rq := c.sent[0]
		c.sent = c.sent[1:]
		c.rounds++
		for _, chunk := range ServeChunks(c.pick(rq.to, rq.req.Sequence), rq.req, 16) {
			c.inFlight = append(c.inFlight, served{rq.to, chunk})
		}
	}
	next := c.inFlight[0]
	c.inFlight = c.inFlight[1:]
	if c.tamper != nil {
		c.tamper(next.from, next.chunk)
	}
	return c.f.Chunk(next.from, next.chunk)
}

// pending reports whether a chunk or a request awaits delivery.
func (c *cluster) pending() bool { return len(c.inFlight) > 0 || len(c.sent) > 0 }

func (c *cluster) pick(peer uint32, seq uint64) Snapshot {
	if c.exact {
		for _, s := range c.snaps[peer] {
			if s.seq == seq {
				return s
			}
		}
		return nil
	}
	return Pick(c.snaps[peer], seq)
}

// run answers requests until the fetch is done or maxSteps pass.
func (c *cluster) run(maxSteps int) (uint64, bool) {
	c.t.Helper()
	for range maxSteps {
		if !c.pending() {
			c.t.Fatalf("stalled: no request pending (rejected %v)", c.obs.rejected)
		}
		if seq, done := c.answer(); done {
			return seq, true
		}
	}
	return 0, false
}

func (c *cluster) lastRequest() request {
	c.t.Helper()
	if len(c.sent) == 0 {
		c.t.Fatal("no request pending")
	}
	return c.sent[len(c.sent)-1]
}

func (c *cluster) wantRejected(want ...string) {
	c.t.Helper()
	if !slices.Equal(c.obs.rejected, want) {
		c.t.Fatalf("rejected %v, want %v", c.obs.rejected, want)
	}
}
