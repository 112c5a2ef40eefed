package simkit

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/wire"
)

// ReqKey names a client request.
type ReqKey struct {
	Client string
	Number uint64
}

// KeyOf is r's name.
func KeyOf(r *wire.Request) ReqKey { return ReqKey{string(r.GetClientId()), r.GetRequestNumber()} }

func (k ReqKey) String() string {
	id := hex.EncodeToString([]byte(k.Client))
	if len(id) > 8 {
		id = id[:8]
	}
	return fmt.Sprintf("%s/%d", id, k.Number)
}

// DescribeRequests names the requests rs, in order.
func DescribeRequests(rs []*wire.Request) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = KeyOf(r).String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// StatusFunc is what a replica's executor will do with a request.
type StatusFunc func(client []byte, number uint64) execution.RequestStatus

// Validity checks validity at every execution step of replicas named by
// K: only issued requests execute, with the operation their client
// issued, and each runs as new at most once per replica (across state
// transfers, which carry the exactly-once record over).
type Validity[K comparable] struct {
	// Unit names a position in the log in failure reports ("sequence",
	// "index"); Verb what a replica does with a request ("executes").
	Unit, Verb string
	// Trusted, when set, reports clients whose requests count as issued
	// although no simulated client issued them.
	Trusted func(client string) bool

	issuedOps map[ReqKey][]byte
	// executedAt[r] maps each request replica r ran as new to its
	// position.
	executedAt map[K]map[ReqKey]uint64
	// Committed is every request some checked replica executed.
	Committed map[ReqKey]bool
}

// NewValidity returns an empty validity checker.
func NewValidity[K comparable](unit, verb string) *Validity[K] {
	return &Validity[K]{Unit: unit, Verb: verb, issuedOps: map[ReqKey][]byte{},
		executedAt: map[K]map[ReqKey]uint64{}, Committed: map[ReqKey]bool{}}
}

// Issued notes that a client issued request number with operation.
func (v *Validity[K]) Issued(client []byte, number uint64, operation []byte) {
	v.issuedOps[ReqKey{string(client), number}] = operation
}

// Check checks the requests replica r (numbered id in reports) is about
// to execute at position at; status is its executor's view of each. It
// returns the violated kind and a description, or "" when all is well.
func (v *Validity[K]) Check(r K, id uint32, at uint64, reqs []*wire.Request, status StatusFunc) (kind, detail string) {
	done := v.executedAt[r]
	if done == nil {
		done = map[ReqKey]uint64{}
		v.executedAt[r] = done
	}
	inBatch := map[ReqKey]bool{}
	for _, req := range reqs {
		k := KeyOf(req)
		if want, ok := v.issuedOps[k]; ok {
			if string(want) != string(req.GetOperation()) {
				return KindValidity, fmt.Sprintf("%s %d: replica %d %s request %s with an operation its client did not issue", v.Unit, at, id, v.Verb, k)
			}
		} else if v.Trusted == nil || !v.Trusted(k.Client) {
			return KindValidity, fmt.Sprintf("%s %d: replica %d %s request %s that no client issued", v.Unit, at, id, v.Verb, k)
		}
		v.Committed[k] = true
		if inBatch[k] || status(req.GetClientId(), req.GetRequestNumber()) != execution.RequestNew {
			continue // the executor answers it from its reply cache (or skips it)
		}
		inBatch[k] = true
		if prev, ok := done[k]; ok {
			return KindValidity, fmt.Sprintf("replica %d executes request %s a second time: at %s %d, after %s %d", id, k, v.Unit, at, v.Unit, prev)
		}
		done[k] = at
	}
	return "", ""
}

// Installed notes that replica r installed src's state at position at:
// r has run what src ran up to at.
func (v *Validity[K]) Installed(r, src K, at uint64) {
	done := map[ReqKey]uint64{}
	for k, s := range v.executedAt[src] {
		if s <= at {
			done[k] = s
		}
	}
	v.executedAt[r] = done
}

// Restarted forgets what replica r ran above last (its executor restarted
// below what it ran: a crash during a state transfer, or a wipe).
func (v *Validity[K]) Restarted(r K, last uint64) {
	for k, at := range v.executedAt[r] {
		if at > last {
			delete(v.executedAt[r], k)
		}
	}
}
