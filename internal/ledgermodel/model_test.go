package ledgermodel

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func mint(account int, amount uint64) Input {
	return Input{Kind: 'm', Sender: IssuerClient, Account: account, Amount: amount}
}
func transfer(from, to int, amount uint64) Input {
	return Input{Kind: 't', Sender: from, Account: to, Amount: amount}
}
func balance(account int) Input { return Input{Kind: 'b', Sender: 1, Account: account} }

func ok(balance, total uint64) Output { return Output{Balance: balance, Total: total} }

func refused(text string) Output { return Output{Refused: true, Error: text} }

func TestLinearizabilityChecker(t *testing.T) {
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"mint then transfer", []porcupine.Operation{
			op(0, 1, 2, mint(1, 100), ok(100, 100)),
			op(1, 3, 4, transfer(1, 2, 30), ok(70, 100)),
			op(2, 5, 6, balance(2), ok(30, 100)),
		}, true},
		{"transfer over the balance refused with it", []porcupine.Operation{
			op(0, 1, 2, mint(1, 10), ok(10, 10)),
			op(1, 3, 4, transfer(1, 2, 11), refused("insufficient funds: balance 10, amount 11")),
		}, true},
		{"refusal naming the wrong balance", []porcupine.Operation{
			op(0, 1, 2, mint(1, 10), ok(10, 10)),
			op(1, 3, 4, transfer(1, 2, 11), refused("insufficient funds: balance 0, amount 11")),
		}, false},
		{"transfer succeeding without funds", []porcupine.Operation{
			op(1, 1, 2, transfer(1, 2, 5), ok(0, 0)),
		}, false},
		{"mint by a non-issuer succeeding", []porcupine.Operation{
			op(1, 1, 2, Input{Kind: 'm', Sender: 1, Account: 1, Amount: 5}, ok(5, 5)),
		}, false},
		{"stale balance after the transfer returned", []porcupine.Operation{
			op(0, 1, 2, mint(1, 100), ok(100, 100)),
			op(1, 3, 4, transfer(1, 2, 30), ok(70, 100)),
			op(2, 5, 6, balance(1), ok(100, 100)),
		}, false},
		{"concurrent read may see either side", []porcupine.Operation{
			op(0, 1, 2, mint(1, 100), ok(100, 100)),
			op(1, 3, 10, transfer(1, 2, 30), ok(70, 100)),
			op(2, 4, 5, balance(1), ok(100, 100)),
		}, true},
		{"transfer applied twice", []porcupine.Operation{
			op(0, 1, 2, mint(1, 100), ok(100, 100)),
			op(1, 3, 4, transfer(1, 2, 30), ok(70, 100)),
			op(2, 5, 6, balance(2), ok(60, 100)),
		}, false},
		{"pending transfer may take effect", []porcupine.Operation{
			op(0, 1, 2, mint(1, 100), ok(100, 100)),
			op(1, 3, math.MaxInt64, transfer(1, 2, 30), Output{Unknown: true}),
			op(2, 5, 6, balance(2), ok(30, 100)),
			op(2, 7, 8, balance(1), ok(70, 100)),
		}, true},
		{"a replica's refusal is never right", []porcupine.Operation{
			op(2, 5, 6, balance(2), Output{Bad: true, Error: "replica refused: busy"}),
		}, false},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(Model, c.ops); got != c.ok {
			t.Errorf("%s: linearizable = %v, want %v", c.name, got, c.ok)
		}
	}
}
