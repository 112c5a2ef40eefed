package raftsim

// This file is a copy of internal/sim's key-value model (internal/sim's
// client.go kvInput/kvOutput and linear.go), which is unexported there;
// keep the two in step.

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// kvInput is an operation of the key-value model.
type kvInput struct {
	kind      byte // 'p' put, 'g' get, 'c' compare-and-swap
	key       string
	value     string // put: the value; cas: the new value
	old       string // cas: the expected value
	oldAbsent bool   // cas: expect the key to be absent
}

func (in kvInput) String() string {
	switch in.kind {
	case 'p':
		return fmt.Sprintf("put(%s,%s)", in.key, in.value)
	case 'g':
		return fmt.Sprintf("get(%s)", in.key)
	}
	if in.oldAbsent {
		return fmt.Sprintf("cas(%s,<absent>,%s)", in.key, in.value)
	}
	return fmt.Sprintf("cas(%s,%s,%s)", in.key, in.old, in.value)
}

// kvOutput is a result: ok (put: true; get: found; cas: swapped) and the
// value (get: the value; failed cas: the current value). unknown marks an
// operation that never completed.
type kvOutput struct {
	ok      bool
	value   string
	unknown bool
}

// kvState is one key's state in the model: its value, or absent.
type kvState struct {
	value   string
	present bool
}

// kvModel is the sequential specification of the key-value store the
// clients use (put, get, compare-and-swap), partitioned by key.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, o := range history {
			k := o.Input.(kvInput).key
			byKey[k] = append(byKey[k], o)
		}
		names := make([]string, 0, len(byKey))
		for k := range byKey {
			names = append(names, k)
		}
		sort.Strings(names)
		out := make([][]porcupine.Operation, 0, len(names))
		for _, k := range names {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		return kvStep(st, in, out)
	},
	DescribeOperation: func(input, output any) string {
		out := output.(kvOutput)
		if out.unknown {
			return input.(kvInput).String() + " -> ?"
		}
		return fmt.Sprintf("%s -> ok=%v value=%q", input.(kvInput), out.ok, out.value)
	},
}

// kvStep is the model's transition: whether output is possible for input
// in state st, and the state after.
func kvStep(st kvState, in kvInput, out kvOutput) (bool, kvState) {
	switch in.kind {
	case 'p':
		return out.unknown || out.ok, kvState{value: in.value, present: true}
	case 'g':
		if out.unknown {
			return true, st
		}
		if out.ok {
			return st.present && st.value == out.value, st
		}
		return !st.present, st
	case 'c':
		matches := (in.oldAbsent && !st.present) || (!in.oldAbsent && st.present && st.value == in.old)
		next := st
		if matches {
			next = kvState{value: in.value, present: true}
		}
		if out.unknown {
			return true, next
		}
		if matches {
			return out.ok, next
		}
		return !out.ok && out.value == st.value, st
	}
	return false, st
}

// history is a client's completed operations, plus the one still pending
// (which may or may not have taken effect: it returns at +infinity with
// an unknown output).
func historyOf(clients []*client) []porcupine.Operation {
	var ops []porcupine.Operation
	for _, c := range clients {
		for _, o := range c.history {
			ops = append(ops, porcupine.Operation{ClientId: c.idx, Input: o.input, Call: o.call, Output: o.output, Return: o.ret})
		}
		if o := c.cur; o != nil {
			ops = append(ops, porcupine.Operation{ClientId: c.idx, Input: o.input, Call: o.call, Output: kvOutput{unknown: true}, Return: math.MaxInt64})
		}
	}
	return ops
}

// checkLinearizable reports whether ops are linearizable against the
// key-value model, and a short description of the history if not.
func checkLinearizable(ops []porcupine.Operation) (bool, string) {
	if porcupine.CheckOperations(kvModel, ops) {
		return true, ""
	}
	sorted := append([]porcupine.Operation(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	var b strings.Builder
	fmt.Fprintf(&b, "history of %d operations is not linearizable:", len(ops))
	for i, o := range sorted {
		if i == 40 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " [c%d %d..%d %s]", o.ClientId, o.Call, o.Return, kvModel.DescribeOperation(o.Input, o.Output))
	}
	return false, b.String()
}
