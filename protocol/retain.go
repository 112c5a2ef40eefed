package protocol

import (
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// retainedBatch is the batch of a pre-prepare this replica logged, kept
// (see retainBatch) while a NEW-VIEW may still re-propose its digest.
type retainedBatch struct {
	// seq is the highest sequence at which the batch was pre-prepared; the
	// batch is released once the stable checkpoint reaches it.
	seq      uint64
	batch    []*wire.Signed
	requests []*wire.Request
}

// logPrePrepare logs a pre-prepare this replica sends or accepts, with its
// batch (which must hash to digest), and retains the batch.
func (r *Replica) logPrePrepare(view, seq uint64, signed *wire.Signed, digest crypto.Digest, batch []*wire.Signed, reqs []*wire.Request) {
	r.ready.Persist = append(r.ready.Persist, LogEntry{View: view, Sequence: seq, Kind: KindPrePrepare, Signed: signed, Batch: batch})
	r.retainBatch(seq, digest, batch, reqs)
	r.noteOrdered(batch, reqs)
}

// retainBatch keeps the batch of a pre-prepare this replica logged at seq,
// in whatever view, until the stable checkpoint reaches seq; Restore
// retains the batches of every pre-prepare in the log the same way. The
// slot of the view may go meanwhile (a NEW-VIEW replaces every slot above
// the last committed sequence, a restart rebuilds only the restored
// view's), but the batch must stay: a prepared certificate for it may
// still be re-proposed by a later NEW-VIEW, and the replicas that logged
// the batch are the only ones that can serve it (BATCH-REQUEST). A valid
// certificate carries the pre-prepare and quorum-1 prepares from distinct
// backups; each correct backup among them (at least quorum-1-f, so at
// least one) logged the batch before it sent its prepare, so it holds it.
//
// It holds at most one batch per distinct digest the log holds above the
// stable checkpoint, the same batches. The null batch needs no keeping.
func (r *Replica) retainBatch(seq uint64, digest crypto.Digest, batch []*wire.Signed, reqs []*wire.Request) {
	if batch == nil || digest == r.vcConfig.NullDigest || seq <= r.window.Low {
		return
	}
	if b, ok := r.retained[digest]; ok {
		b.seq = max(b.seq, seq)
		return
	}
	r.retained[digest] = &retainedBatch{seq: seq, batch: batch, requests: reqs}
}

// releaseBatches drops the retained batches at or below the stable
// checkpoint stable: no NEW-VIEW re-proposes at or below it.
func (r *Replica) releaseBatches(stable uint64) {
	for d, b := range r.retained {
		if b.seq <= stable {
			delete(r.retained, d)
		}
	}
}
