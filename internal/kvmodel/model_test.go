package kvmodel

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func put(client int, call, ret int64, key, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Kind: 'p', Key: key, Value: value}, Call: call, Output: Output{OK: true}, Return: ret}
}

func get(client int, call, ret int64, key, value string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: Input{Kind: 'g', Key: key}, Call: call,
		Output: Output{OK: value != "", Value: value}, Return: ret}
}

func TestLinearizabilityChecker(t *testing.T) {
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"sequential", []porcupine.Operation{put(0, 1, 2, "x", "a"), get(1, 3, 4, "x", "a")}, true},
		{"concurrent read may see old value", []porcupine.Operation{put(0, 1, 10, "x", "a"), get(1, 2, 3, "x", "")}, true},
		{"stale read after write returned", []porcupine.Operation{put(0, 1, 2, "x", "a"), get(1, 3, 4, "x", "")}, false},
		{"read of a value never written", []porcupine.Operation{get(1, 3, 4, "x", "b")}, false},
		{"reads go back in time", []porcupine.Operation{
			put(0, 1, 2, "x", "a"), put(0, 3, 4, "x", "b"), get(1, 5, 6, "x", "b"), get(2, 7, 8, "x", "a"),
		}, false},
		{"cas succeeds on expected value", []porcupine.Operation{
			put(0, 1, 2, "x", "a"),
			{ClientId: 1, Input: Input{Kind: 'c', Key: "x", Old: "a", Value: "b"}, Call: 3, Output: Output{OK: true}, Return: 4},
			get(2, 5, 6, "x", "b"),
		}, true},
		{"two cas from the same old value both succeed", []porcupine.Operation{
			put(0, 1, 2, "x", "a"),
			{ClientId: 1, Input: Input{Kind: 'c', Key: "x", Old: "a", Value: "b"}, Call: 3, Output: Output{OK: true}, Return: 6},
			{ClientId: 2, Input: Input{Kind: 'c', Key: "x", Old: "a", Value: "c"}, Call: 3, Output: Output{OK: true}, Return: 6},
		}, false},
		{"failed cas reports the current value", []porcupine.Operation{
			put(0, 1, 2, "x", "a"),
			{ClientId: 1, Input: Input{Kind: 'c', Key: "x", OldAbsent: true, Value: "b"}, Call: 3, Output: Output{OK: false, Value: "a"}, Return: 4},
		}, true},
		{"pending put may or may not take effect", []porcupine.Operation{
			{ClientId: 0, Input: Input{Kind: 'p', Key: "x", Value: "a"}, Call: 1, Output: Output{Unknown: true}, Return: math.MaxInt64},
			get(1, 3, 4, "x", ""), get(1, 5, 6, "x", "a"),
		}, true},
	}
	for _, c := range cases {
		if ok := porcupine.CheckOperations(Model, c.ops); ok != c.ok {
			t.Errorf("%s: linearizable = %v, want %v", c.name, ok, c.ok)
		}
	}
}
