package kvmodel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/execution"
)

// Input is an operation of the model.
type Input struct {
	Kind      byte // 'p' put, 'g' get, 'c' compare-and-swap
	Key       string
	Value     string // put: the value; cas: the new value
	Old       string // cas: the expected value
	OldAbsent bool   // cas: expect the key to be absent
}

func (in Input) String() string {
	switch in.Kind {
	case 'p':
		return fmt.Sprintf("put(%s,%s)", in.Key, in.Value)
	case 'g':
		return fmt.Sprintf("get(%s)", in.Key)
	}
	if in.OldAbsent {
		return fmt.Sprintf("cas(%s,<absent>,%s)", in.Key, in.Value)
	}
	return fmt.Sprintf("cas(%s,%s,%s)", in.Key, in.Old, in.Value)
}

// Output is a result: OK (put: true; get: found; cas: swapped) and the
// value (get: the value; failed cas: the current value). Unknown marks an
// operation that never completed.
type Output struct {
	OK      bool
	Value   string
	Unknown bool
}

// Known is what a client last learned of each key: the expected value of
// its next compare-and-swap.
type Known map[string]string

// NextInput draws the next operation on key with value from rng: 40% puts,
// 30% gets, 30% compare-and-swaps expecting what the client last learned,
// and returns it with its encoding for execution.KV.
func NextInput(rng *rand.Rand, key, value string, known Known) (Input, []byte) {
	in := Input{Key: key, Value: value}
	switch r := rng.IntN(100); {
	case r < 40:
		in.Kind = 'p'
		return in, execution.EncodePut([]byte(in.Key), []byte(in.Value))
	case r < 70:
		in.Kind, in.Value = 'g', ""
		return in, execution.EncodeGet([]byte(in.Key))
	default:
		in.Kind = 'c'
		in.Old = known[in.Key]
		in.OldAbsent = in.Old == ""
		return in, execution.EncodeCAS([]byte(in.Key), []byte(in.Old), in.OldAbsent, []byte(in.Value))
	}
}

// OutputOf turns a reply (its refusal text, or its encoded result) into an
// Output.
func OutputOf(refusal string, result []byte) Output {
	if refusal != "" {
		return Output{Value: "error:" + refusal}
	}
	res, err := execution.DecodeResult(result)
	if err != nil || res.GetError() != "" {
		return Output{Value: fmt.Sprintf("undecodable result %q", result)}
	}
	return Output{OK: res.GetOk(), Value: string(res.GetValue())}
}

// Record updates what the client knows of in's key after out.
func (k Known) Record(in Input, out Output) {
	switch in.Kind {
	case 'p':
		k[in.Key] = in.Value
	case 'g':
		k[in.Key] = out.Value
	case 'c':
		if out.OK {
			k[in.Key] = in.Value
		} else {
			k[in.Key] = out.Value
		}
	}
}

// Pending is an operation that was called and never returned: it may or
// may not have taken effect, so it returns at +infinity with an unknown
// output.
func Pending(client int, in Input, call int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: Output{Unknown: true}, Return: math.MaxInt64}
}

// state is one key's state in the model: its value, or absent.
type state struct {
	value   string
	present bool
}

// Model is the sequential specification, partitioned by key.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, o := range history {
			k := o.Input.(Input).Key
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
	Init: func() any { return state{} },
	Step: func(st, input, output any) (bool, any) {
		return step(st.(state), input.(Input), output.(Output))
	},
	DescribeOperation: func(input, output any) string {
		out := output.(Output)
		if out.Unknown {
			return input.(Input).String() + " -> ?"
		}
		return fmt.Sprintf("%s -> ok=%v value=%q", input.(Input), out.OK, out.Value)
	},
}

// step is the model's transition: whether out is possible for in in st,
// and the state after.
func step(st state, in Input, out Output) (bool, state) {
	switch in.Kind {
	case 'p':
		return out.Unknown || out.OK, state{value: in.Value, present: true}
	case 'g':
		if out.Unknown {
			return true, st
		}
		if out.OK {
			return st.present && st.value == out.Value, st
		}
		return !st.present, st
	case 'c':
		matches := (in.OldAbsent && !st.present) || (!in.OldAbsent && st.present && st.value == in.Old)
		next := st
		if matches {
			next = state{value: in.Value, present: true}
		}
		if out.Unknown {
			return true, next
		}
		if matches {
			return out.OK, next
		}
		return !out.OK && out.Value == st.value, st
	}
	return false, st
}

// Check reports whether ops are linearizable against Model, and a short
// description of the history if not.
func Check(ops []porcupine.Operation) (bool, string) {
	if porcupine.CheckOperations(Model, ops) {
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
		fmt.Fprintf(&b, " [c%d %d..%d %s]", o.ClientId, o.Call, o.Return, Model.DescribeOperation(o.Input, o.Output))
	}
	return false, b.String()
}
