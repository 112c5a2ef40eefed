package raftsim

import (
	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/internal/kvmodel"
)

// historyOf is the clients' completed operations, plus each one's
// pending operation (kvmodel.Pending).
func historyOf(clients []*client) []porcupine.Operation {
	var ops []porcupine.Operation
	for _, c := range clients {
		for _, o := range c.history {
			ops = append(ops, porcupine.Operation{ClientId: c.idx, Input: o.input, Call: o.call, Output: o.output, Return: o.ret})
		}
		if o := c.cur; o != nil {
			ops = append(ops, kvmodel.Pending(c.idx, o.input, o.call))
		}
	}
	return ops
}
