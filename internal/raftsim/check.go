package raftsim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
)

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

// checker holds the safety checks that run during a run: agreement on
// every applied entry and state digest, and validity (simkit.Validity,
// per replica ID: each replica's exactly-once record, carried over by
// state transfer).
type checker struct {
	*simkit.Validity[uint32]
	fail func(kind, detail string)
	// entries and digests are, per index, the applied entry and the state
	// digest after it, as the first replica reported them.
	entries map[uint64]entryRecord
	digests map[uint64]digestRecord
}

func newChecker(fail func(kind, detail string)) *checker {
	return &checker{Validity: simkit.NewValidity[uint32]("index", "applies"), fail: fail,
		entries: map[uint64]entryRecord{}, digests: map[uint64]digestRecord{}}
}

func (c *checker) issued(client []byte, number uint64, operation []byte) {
	c.Issued(client, number, operation)
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
		c.fail(simkit.KindAgreement, fmt.Sprintf("state digest after index %d: replica %d has %x, replica %d had %x",
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
			c.fail(simkit.KindValidity, fmt.Sprintf("replica %d applies an undecodable entry at index %d: %v", h.id, index, err))
			return
		}
		reqs = entry.GetRequests()
	}
	hash := entryHash(e)
	if rec, seen := c.entries[index]; !seen {
		c.entries[index] = entryRecord{replica: h.id, term: e.GetTerm(), hash: hash, requests: simkit.DescribeRequests(reqs)}
	} else if rec.hash != hash {
		c.fail(simkit.KindAgreement, fmt.Sprintf("index %d: replica %d applied the entry of term %d %s, but replica %d applies the entry of term %d %s",
			index, rec.replica, rec.term, rec.requests, h.id, e.GetTerm(), simkit.DescribeRequests(reqs)))
		return
	}
	c.checkRequests(h.id, index, reqs, exec)
	h.w.fresh.applied(index, reqs)
}

// checkRequests checks validity: every request was issued with exactly
// this operation, and none runs as new twice on one replica.
func (c *checker) checkRequests(id uint32, index uint64, reqs []*wire.Request, exec *execution.Executor) {
	if kind, detail := c.Check(id, id, index, reqs, exec.Status); kind != "" {
		c.fail(kind, detail)
	}
}

// restarted forgets what h's executor no longer holds (a restart after a
// crash during a state transfer, or a wipe, starts below what it ran).
func (c *checker) restarted(h *host) { c.Restarted(h.id, h.exec.LastExecuted()) }

// installed notes that h restored src's state at index: h has run what
// src ran up to index.
func (c *checker) installed(h *host, src uint32, index uint64) { c.Installed(h.id, src, index) }

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
