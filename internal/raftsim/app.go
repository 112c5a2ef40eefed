package raftsim

import (
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage/raftlog"
	"github.com/pbftnode/pbftnode/wire"
	"google.golang.org/protobuf/proto"
)

// recordingApp is the KV application with a hook for the checkers: the
// executor calls Begin once per applied index, before executing anything,
// which is where the checkers see the state digest after the previous
// index and the log entry about to be applied. Everything else is the
// embedded KV's (so the executor still sees a BatchApplication and a
// TransferableApplication).
type recordingApp struct {
	*execution.KV
	h       *host
	exec    *execution.Executor
	raftLog *raftlog.Log
	// alterPuts is PlantAlterOp: every put stores a different value.
	alterPuts bool
}

// Begin implements execution.BatchApplication.
func (a *recordingApp) Begin() {
	if a.exec != nil {
		a.h.w.check.beforeApply(a.h, a.exec, a.raftLog)
	}
	a.KV.Begin()
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
