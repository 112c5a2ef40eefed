package raftsim

import (
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// applyHook is where the checkers see each applied index: the executor
// calls the application's Begin once per applied index, before executing
// anything, which is where the checkers see the state digest (and, in a
// ledger run, the ledger's invariants) after the previous index and the
// log entry about to be applied.
type applyHook struct {
	h       *host
	exec    *execution.Executor
	raftLog *raftlog.Log
}

func (k *applyHook) beforeApply() {
	if k.exec != nil {
		k.h.w.check.beforeApply(k.h, k.exec, k.raftLog)
		k.h.checkLedger("before applying")
	}
}

// recordingApp is the KV application with the checkers' hook in Begin.
// Everything else is the embedded KV's (so the executor still sees a
// BatchApplication and a TransferableApplication).
type recordingApp struct {
	*execution.KV
	hook *applyHook
	// alterPuts is PlantAlterOp: every put stores a different value.
	alterPuts bool
}

// Begin implements execution.BatchApplication.
func (a *recordingApp) Begin() {
	a.hook.beforeApply()
	a.KV.Begin()
}

// recordingLedger is the ledger (a Config.Ledger run) with the checkers'
// hook in Begin; everything else is the embedded ledger's.
type recordingLedger struct {
	*ledger.Ledger
	hook *applyHook
}

// Begin implements execution.BatchApplication.
func (a *recordingLedger) Begin() {
	a.hook.beforeApply()
	a.Ledger.Begin()
}

// Execute implements execution.Application.
func (a *recordingApp) Execute(op []byte) []byte {
	if a.alterPuts {
		op = alterPut(op)
	}
	return a.KV.Execute(op)
}

// alterPut rewrites a put's value; other operations stay as they are.
func alterPut(op []byte) []byte {
	var decoded wire.KVOperation
	if proto.Unmarshal(op, &decoded) != nil || decoded.GetPut() == nil {
		return op
	}
	put := decoded.GetPut()
	return execution.EncodePut(put.GetKey(), append(append([]byte{}, put.GetValue()...), '!'))
}

// isGet reports whether op is an encoded get.
func isGet(op []byte) bool {
	var decoded wire.KVOperation
	return proto.Unmarshal(op, &decoded) == nil && decoded.GetGet() != nil
}
