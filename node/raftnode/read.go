package raftnode

import (
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/raftmode"
	"github.com/pbftnode/pbftnode/wire"
)

// readOnlyPath is the read-only path the core's reads execute on: a
// key-value get, executed on the current state. Other applications have
// none (their reads are refused and clients order them).
// TODO(issue 19): replace with the executor's read-only path
// (execution.Executor.Read) once branch fastread lands.
func readOnlyPath(app execution.Application) raftmode.ReadFunc {
	kv, ok := app.(*execution.KV)
	if !ok {
		return nil
	}
	return func(_, op []byte) ([]byte, bool) {
		var decoded wire.KVOperation
		if proto.Unmarshal(op, &decoded) != nil || decoded.GetGet() == nil {
			return nil, false
		}
		return kv.Execute(op), true
	}
}
