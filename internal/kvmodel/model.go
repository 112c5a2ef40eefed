package kvmodel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

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

// keys are the small key space Source's operations work on.
var keys = []string{"x", "y", "z"}

// Source is a simulated client's source of key-value operations (the
// simkit.Source of the key-value store): NextInput on one of three keys,
// with what the client learned.
type Source struct {
	// known is the last value this client saw per key ("" = absent).
	known Known
}

// NewSource returns the operation source of one client.
func NewSource() *Source { return &Source{known: Known{}} }

// Next draws operation number of client: a key, then NextInput with a
// value naming the client and the number.
func (s *Source) Next(rng *rand.Rand, client int, number uint64) (fmt.Stringer, []byte) {
	return NextInput(rng, keys[rng.IntN(len(keys))], fmt.Sprintf("c%d.%d", client, number), s.known)
}

// Output reads a reply (OutputOf) and records what it says of the key.
func (s *Source) Output(in fmt.Stringer, refusal string, result []byte) any {
	out := OutputOf(refusal, result)
	s.known.Record(in.(Input), out)
	return out
}

// Pending is the history entry of an operation that never returned.
func (s *Source) Pending(client int, in fmt.Stringer, call int64) porcupine.Operation {
	return Pending(client, in.(Input), call)
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
