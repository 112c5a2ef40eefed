package raftsim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

// reqKey names a client request.
type reqKey struct {
	client string
	number uint64
}

func (k reqKey) String() string {
	id := hex.EncodeToString([]byte(k.client))
	if len(id) > 8 {
		id = id[:8]
	}
	return fmt.Sprintf("%s/%d", id, k.number)
}

// entryRecord is the first log entry a replica applied at an index.
type entryRecord struct {
	replica  uint32
	term     uint64
	hash     [32]byte
	requests string
}

// digestRecord is the first state digest a replica reported after an
// index.
type digestRecord struct {
	replica uint32
	digest  [32]byte
}

// checker holds the safety checks that run during a run.
type checker struct {
	fail func(kind, detail string)
	// entries and digests are, per index, the applied entry and the state
	// digest after it, as the first replica reported them.
	entries map[uint64]entryRecord
	digests map[uint64]digestRecord
	// issuedOps are the operations the simulated clients issued.
	issuedOps map[reqKey][]byte
	// executedAt[r] maps each request replica r's executor ran as new to
	// the index it ran at (its exactly-once record, carried over by state
	// transfer).
	executedAt map[uint32]map[reqKey]uint64
	committed  map[reqKey]bool
}

func newChecker(fail func(kind, detail string)) *checker {
	return &checker{fail: fail, entries: map[uint64]entryRecord{}, digests: map[uint64]digestRecord{},
		issuedOps: map[reqKey][]byte{}, executedAt: map[uint32]map[reqKey]uint64{}, committed: map[reqKey]bool{}}
}

func (c *checker) issued(client []byte, number uint64, operation []byte) {
	c.issuedOps[reqKey{string(client), number}] = operation
}

// digestAt checks the state digest replica h has after index against the
// first one reported for index.
func (c *checker) digestAt(h *host, index uint64, digest [32]byte) {
	rec, seen := c.digests[index]
	if !seen {
		c.digests[index] = digestRecord{replica: h.id, digest: digest}
		return
	}
	if rec.digest != digest {
		c.fail(KindAgreement, fmt.Sprintf("state digest after index %d: replica %d has %x, replica %d had %x",
			index, h.id, digest[:6], rec.replica, rec.digest[:6]))
	}
}

// beforeApply runs when h's executor is about to apply the entry at
// LastExecuted()+1: it checks the digest after the previous index, and the
// entry (read from h's raft log, where the Core saved it before applying)
// for agreement and validity.
func (c *checker) beforeApply(h *host, exec *execution.Executor, raftLog *raftlog.Log) {
	last := exec.LastExecuted()
	c.digestAt(h, last, exec.StateDigest())
	index := last + 1
	if index == 1 {
		return // the bootstrap state, applied before the log exists
	}
	ents, err := raftLog.Entries(index, index+1, math.MaxUint64)
	if err != nil || len(ents) != 1 {
		c.fail(KindInternal, fmt.Sprintf("replica %d applies index %d, which its raft log does not hold: %v", h.id, index, err))
		return
	}
	e := ents[0]
	var reqs []*wire.Request
	if e.GetType() == raftpb.EntryType_EntryNormal && len(e.GetData()) > 0 {
		var entry wire.RaftEntry
		if err := proto.Unmarshal(e.GetData(), &entry); err != nil {
			c.fail(KindValidity, fmt.Sprintf("replica %d applies an undecodable entry at index %d: %v", h.id, index, err))
			return
		}
		reqs = entry.GetRequests()
	}
	hash := entryHash(e)
	if rec, seen := c.entries[index]; !seen {
		c.entries[index] = entryRecord{replica: h.id, term: e.GetTerm(), hash: hash, requests: describeRequests(reqs)}
	} else if rec.hash != hash {
		c.fail(KindAgreement, fmt.Sprintf("index %d: replica %d applied the entry of term %d %s, but replica %d applies the entry of term %d %s",
			index, rec.replica, rec.term, rec.requests, h.id, e.GetTerm(), describeRequests(reqs)))
		return
	}
	c.checkRequests(h.id, index, reqs, exec)
}

// checkRequests checks validity: every request was issued with exactly
// this operation, and none runs as new twice on one replica.
func (c *checker) checkRequests(id uint32, index uint64, reqs []*wire.Request, exec *execution.Executor) {
	done := c.executedAt[id]
	if done == nil {
		done = map[reqKey]uint64{}
		c.executedAt[id] = done
	}
	inEntry := map[reqKey]bool{}
	for _, r := range reqs {
		k := reqKey{string(r.GetClientId()), r.GetRequestNumber()}
		want, ok := c.issuedOps[k]
		if !ok {
			c.fail(KindValidity, fmt.Sprintf("index %d: replica %d applies request %s that no client issued", index, id, k))
			return
		}
		if string(want) != string(r.GetOperation()) {
			c.fail(KindValidity, fmt.Sprintf("index %d: replica %d applies request %s with an operation its client did not issue", index, id, k))
			return
		}
		c.committed[k] = true
		if inEntry[k] || exec.Status(r.GetClientId(), r.GetRequestNumber()) != execution.RequestNew {
			continue // the executor answers it from its reply cache (or skips it)
		}
		inEntry[k] = true
		if prev, ok := done[k]; ok {
			c.fail(KindValidity, fmt.Sprintf("replica %d executes request %s a second time: at index %d, after index %d", id, k, index, prev))
			return
		}
		done[k] = index
	}
}

// restarted forgets what h's executor no longer holds (a restart after a
// crash during a state transfer, or a wipe, starts below what it ran).
func (c *checker) restarted(h *host) {
	last := h.exec.LastExecuted()
	for k, at := range c.executedAt[h.id] {
		if at > last {
			delete(c.executedAt[h.id], k)
		}
	}
}

// installed notes that h restored src's state at index: h has run what
// src ran up to index.
func (c *checker) installed(h *host, src uint32, index uint64) {
	done := map[reqKey]uint64{}
	for k, at := range c.executedAt[src] {
		if at <= index {
			done[k] = at
		}
	}
	c.executedAt[h.id] = done
}

func entryHash(e *raftpb.Entry) [32]byte {
	hash := sha256.New()
	var hdr [17]byte
	binary.BigEndian.PutUint64(hdr[:8], e.GetTerm())
	binary.BigEndian.PutUint64(hdr[8:16], e.GetIndex())
	hdr[16] = byte(e.GetType())
	hash.Write(hdr[:])
	hash.Write(e.GetData())
	var out [32]byte
	hash.Sum(out[:0])
	return out
}

func describeRequests(rs []*wire.Request) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = reqKey{string(r.GetClientId()), r.GetRequestNumber()}.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}
