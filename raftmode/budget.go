package raftmode

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// pendingBudget counts the requests waiting to be proposed per client key
// and in bytes. The queue empties at every proposal, so the budget bounds
// what one key (however many sessions it opens) can queue between two.
type pendingBudget struct {
	bytes    int
	byKey    map[string]int
	keyBytes map[string]int
}

func newPendingBudget() pendingBudget {
	return pendingBudget{byKey: make(map[string]int), keyBytes: make(map[string]int)}
}

// admit charges req to its key, or reports why it does not fit.
func (b *pendingBudget) admit(cfg Config, req *wire.Request) error {
	id := req.GetClientId()
	k := string(crypto.ClientKeyOf(id)) // every session of a key shares its budget
	size := proto.Size(req) + entryOverhead
	switch {
	case b.bytes+size > cfg.MaxPendingBytes:
		return fmt.Errorf("%w: %d bytes pending", ErrQueueFull, b.bytes)
	case b.byKey[k] >= cfg.MaxPendingPerKey:
		return fmt.Errorf("%w: %d requests pending", ErrClientQueueFull, b.byKey[k])
	case b.byKey[k] > 0 && b.keyBytes[k]+size > cfg.MaxPendingBytesPerKey:
		return fmt.Errorf("%w: %d bytes pending", ErrClientQueueFull, b.keyBytes[k])
	}
	b.bytes += size
	b.byKey[k]++
	b.keyBytes[k] += size
	return nil
}

// reset empties the budget with the queue.
func (b *pendingBudget) reset() {
	b.bytes = 0
	clear(b.byKey)
	clear(b.keyBytes)
}
