package raftsim

import (
	"encoding/binary"
	"fmt"

	"github.com/pbftnode/pbftnode/internal/simkit"
	"github.com/pbftnode/pbftnode/wire"
)

// freshness is the read-only path's own check, sharper than porcupine's
// (which needs a conflicting write on the same key to see a stale read):
// a read-only answer must come from a state that includes every ordered
// operation that completed, anywhere, before the read was issued. The
// log is agreed, so "includes" is "the answering replica had applied at
// least the index where that operation was applied".
type freshness struct {
	// appliedAt is the index each request was first applied at.
	appliedAt map[string]uint64
	// completed is the highest such index of an accepted ordered reply.
	completed uint64
	// floor is, per client, completed when its current read was issued.
	floor map[int]uint64
	// answeredAt is the applied index of the replica that sent a
	// read-only answer, when it sent it.
	answeredAt map[*wire.Reply]uint64
}

func newFreshness() freshness {
	return freshness{appliedAt: map[string]uint64{}, floor: map[int]uint64{}, answeredAt: map[*wire.Reply]uint64{}}
}

func requestName(client []byte, number uint64) string {
	return string(binary.BigEndian.AppendUint64(append([]byte(nil), client...), number))
}

// applied notes that reqs were applied at index (the first time counts).
func (f *freshness) applied(index uint64, reqs []*wire.Request) {
	for _, r := range reqs {
		k := requestName(r.GetClientId(), r.GetRequestNumber())
		if _, ok := f.appliedAt[k]; !ok {
			f.appliedAt[k] = index
		}
	}
}

// issued notes a new read-only request of client.
func (f *freshness) issued(client int) { f.floor[client] = f.completed }

// answered notes a read-only answer that replica h sends now.
func (f *freshness) answered(h *host, r *wire.Reply) {
	if r.GetReadOnly() && r.GetError() == "" && h.exec != nil {
		f.answeredAt[r] = h.exec.LastExecuted()
	}
}

// accepted checks (read-only) or notes (ordered) a reply client accepts;
// it returns a violation's detail, or "".
func (f *freshness) accepted(client int, r *wire.Reply) string {
	if !r.GetReadOnly() {
		if index, ok := f.appliedAt[requestName(r.GetClientId(), r.GetRequestNumber())]; ok {
			f.completed = max(f.completed, index)
		}
		return ""
	}
	at, ok := f.answeredAt[r]
	delete(f.answeredAt, r)
	if ok && at < f.floor[client] {
		return fmt.Sprintf("client %d's read-only request %d was answered by replica %d at applied index %d, but an operation applied at index %d completed before the read was issued",
			client, r.GetRequestNumber(), r.GetReplica(), at, f.floor[client])
	}
	return ""
}

// KindStaleRead is a read-only answer from a state missing an operation
// that completed before the read was issued.
const KindStaleRead = simkit.KindLinearizability
