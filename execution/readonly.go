package execution

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// ReadOnlyApplication is an Application that can answer some operations
// without changing its state: the read-only path (wire.Request.read_only)
// executes them at once on a replica's current state, outside any batch,
// without ordering them. ReadOnly returns ok only when op cannot change
// the state whatever the state is (a get; a balance), and then result
// must be the bytes ExecuteRequest (or Execute) would return for op,
// sent by clientID, on the current state. For every other operation
// (writes, malformed operations) it returns ok false and must not change
// anything. It is never called during a batch.
type ReadOnlyApplication interface {
	Application
	ReadOnly(clientID, op []byte) (result []byte, ok bool)
}

// ErrNotReadOnly is returned by Executor.Read for an operation the
// application does not answer on the read-only path (a write, or an
// application that is not a ReadOnlyApplication).
var ErrNotReadOnly = errors.New("execution: not a read-only operation")

// ErrRestoring is returned by Executor.Read while a state transfer
// restores the state (RestoreBegin to its end): the state is partial.
var ErrRestoring = errors.New("execution: state being restored")

// errReadDuringBatch reports a Read while a batch is being applied: the
// caller (one goroutine owns the executor) broke the contract.
var errReadDuringBatch = errors.New("execution: read during a batch")

// Read answers op, sent by clientID, on the read-only path: executed on
// the state after the last applied batch (LastExecuted), with no sequence,
// no client window and no reply cache (a read changes nothing). It
// returns ErrNotReadOnly when the application does not classify op as
// read-only. Not allowed during Apply (the one goroutine that owns the
// executor calls it between batches).
func (e *Executor) Read(clientID, op []byte) ([]byte, error) {
	e.settle()
	if e.restore != nil {
		return nil, ErrRestoring
	}
	ro, ok := e.app.(ReadOnlyApplication)
	if !ok {
		return nil, ErrNotReadOnly
	}
	result, ok := ro.ReadOnly(clientID, op)
	if !ok {
		return nil, ErrNotReadOnly
	}
	return result, nil
}

// ReadOnly answers a get on the current state (see ReadOnlyApplication);
// every other operation is not read-only. A storage failure during the
// read makes it not ok (the caller answers with an error; the ordered
// path reports such a failure as its own error).
func (kv *KV) ReadOnly(_ []byte, op []byte) ([]byte, bool) {
	if kv.inBatch {
		return nil, false
	}
	key, ok := getKey(op)
	if !ok {
		return nil, false
	}
	r := kv.read(key)
	if err := kv.batchErr; err != nil {
		// Outside a batch nothing else reads batchErr; Begin resets it.
		kv.batchErr = nil
		return nil, false
	}
	return r.encode(), true
}

// ReadOnlyOutsideBatch runs read, which may call Get only, outside any
// batch, and reports whether every read succeeded (a storage failure
// reads as absent, so its result must be dropped). For applications
// built on KV (the ledger) to implement ReadOnlyApplication.
func (kv *KV) ReadOnlyOutsideBatch(read func() []byte) ([]byte, error) {
	if kv.inBatch {
		return nil, errReadDuringBatch
	}
	result := read()
	if err := kv.batchErr; err != nil {
		kv.batchErr = nil
		return nil, fmt.Errorf("kv: read-only: %w", err)
	}
	return result, nil
}

// getKey returns the key of op when op is an encoded get.
func getKey(op []byte) ([]byte, bool) {
	if d, ok := decodeSimpleOp(op); ok {
		return d.key, d.field == opGetField
	}
	var decoded wire.KVOperation
	if proto.Unmarshal(op, &decoded) != nil {
		return nil, false
	}
	get, ok := decoded.Op.(*wire.KVOperation_Get)
	if !ok {
		return nil, false
	}
	return get.Get.GetKey(), true
}
