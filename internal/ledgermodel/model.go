package ledgermodel

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/anishathalye/porcupine"

	"github.com/pbftnode/pbftnode/ledger"
)

// MaxAccounts bounds the accounts (one per simulated client) the model
// tracks.
const MaxAccounts = 8

// IssuerClient is the index of the client whose key is the ledger's
// issuer key in a simulation.
const IssuerClient = 0

// Input is an operation of the model: Sender (a client index) sends it;
// Account is the mint's account, the transfer's recipient, or the read
// account (client indexes).
type Input struct {
	Kind    byte // 'm' mint, 't' transfer, 'b' balance, 'h' history
	Sender  int
	Account int
	Amount  uint64
}

func (in Input) String() string {
	switch in.Kind {
	case 'm':
		return fmt.Sprintf("c%d:mint(a%d,%d)", in.Sender, in.Account, in.Amount)
	case 't':
		return fmt.Sprintf("c%d:transfer(a%d,%d)", in.Sender, in.Account, in.Amount)
	case 'b':
		return fmt.Sprintf("c%d:balance(a%d)", in.Sender, in.Account)
	}
	return fmt.Sprintf("c%d:history(a%d)", in.Sender, in.Account)
}

// Output is a result: refused (with the ledger's error text), or the
// balance and total minted it reports. Bad marks a reply that is not a
// ledger result at all (a replica's refusal, an undecodable result, a
// history whose last entry contradicts its balance); Unknown an
// operation that never completed.
type Output struct {
	Refused bool
	Error   string
	Balance uint64
	Total   uint64
	Bad     bool
	Unknown bool
}

// Source is a simulated client's source of ledger operations (a
// simkit.Source): the issuer client mostly mints, the others mostly
// transfer among the accounts (often more than they hold), and all read
// balances and histories. Mints by other clients and zero amounts are
// drawn too: they must be refused.
type Source struct {
	accounts [][]byte
}

// NewSource returns the operation source of a client, over accounts, the
// accounts of the clients by index (at most MaxAccounts; the issuer's at
// IssuerClient).
func NewSource(accounts [][]byte) *Source {
	if len(accounts) > MaxAccounts {
		panic(fmt.Sprintf("ledgermodel: %d accounts, at most %d", len(accounts), MaxAccounts))
	}
	return &Source{accounts: accounts}
}

// Next draws operation number of client.
func (s *Source) Next(rng *rand.Rand, client int, _ uint64) (fmt.Stringer, []byte) {
	in := Input{Sender: client, Account: rng.IntN(len(s.accounts)), Amount: 1 + rng.Uint64N(80)}
	if rng.IntN(50) == 0 {
		in.Amount = 0
	}
	r := rng.IntN(100)
	switch {
	case client == IssuerClient && r < 40, client != IssuerClient && r < 4:
		in.Kind = 'm'
		return in, ledger.EncodeMint(s.accounts[in.Account], in.Amount)
	case r < 70:
		in.Kind = 't'
		return in, ledger.EncodeTransfer(s.accounts[in.Account], in.Amount)
	case r < 90:
		in.Kind, in.Amount = 'b', 0
		return in, ledger.EncodeBalance(s.accounts[in.Account])
	default:
		in.Kind, in.Amount = 'h', 0
		return in, ledger.EncodeHistory(s.accounts[in.Account], 5)
	}
}

// Output reads a reply.
func (s *Source) Output(in fmt.Stringer, refusal string, result []byte) any {
	return OutputOf(refusal, result)
}

// Pending is the history entry of an operation that never returned: it
// may or may not have taken effect.
func (s *Source) Pending(client int, in fmt.Stringer, call int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: Output{Unknown: true}, Return: math.MaxInt64}
}

// OutputOf turns a reply (its refusal text, or its encoded result) into an
// Output.
func OutputOf(refusal string, result []byte) Output {
	if refusal != "" {
		return Output{Bad: true, Error: "replica refused: " + refusal}
	}
	res, err := ledger.DecodeResult(result)
	if err != nil {
		return Output{Bad: true, Error: fmt.Sprintf("undecodable result %q", result)}
	}
	if res.GetError() != "" {
		return Output{Refused: true, Error: res.GetError()}
	}
	if h := res.GetHistory(); len(h) > 0 && h[len(h)-1].GetBalanceAfter() != res.GetBalance() {
		return Output{Bad: true, Error: fmt.Sprintf("history ends at balance %d, result says %d", h[len(h)-1].GetBalanceAfter(), res.GetBalance())}
	}
	return Output{Balance: res.GetBalance(), Total: res.GetTotalMinted()}
}

// state is the ledger in the model: the balances by account and the total
// minted (comparable, for porcupine).
type state struct {
	balances [MaxAccounts]uint64
	total    uint64
}

// Model is the ledger's sequential specification (one partition: a
// transfer touches two accounts).
var Model = porcupine.Model{
	Init: func() any { return state{} },
	Step: func(st, input, output any) (bool, any) {
		return step(st.(state), input.(Input), output.(Output))
	},
	DescribeOperation: func(input, output any) string {
		out := output.(Output)
		switch {
		case out.Unknown:
			return input.(Input).String() + " -> ?"
		case out.Refused || out.Bad:
			return fmt.Sprintf("%s -> refused %q", input.(Input), out.Error)
		}
		return fmt.Sprintf("%s -> balance %d total %d", input.(Input), out.Balance, out.Total)
	},
}

// step is the model's transition: whether out is possible for in in st,
// and the state after.
func step(st state, in Input, out Output) (bool, state) {
	if out.Bad {
		return false, st
	}
	next := st
	var refusal string
	var balance uint64
	switch in.Kind {
	case 'm':
		if in.Sender != IssuerClient || in.Amount == 0 || in.Amount > math.MaxUint64-st.total {
			refusal = "*"
			break
		}
		next.total += in.Amount
		next.balances[in.Account] += in.Amount
		balance = next.balances[in.Account]
	case 't':
		if in.Amount == 0 {
			refusal = "*"
			break
		}
		if have := st.balances[in.Sender]; have < in.Amount {
			refusal = fmt.Sprintf("insufficient funds: balance %d, amount %d", have, in.Amount)
			break
		}
		next.balances[in.Sender] -= in.Amount
		next.balances[in.Account] += in.Amount
		balance = next.balances[in.Sender]
	default:
		balance = st.balances[in.Account]
	}
	if out.Unknown {
		return true, next
	}
	if refusal != "" {
		return out.Refused && (refusal == "*" || out.Error == refusal), st
	}
	return !out.Refused && out.Balance == balance && out.Total == next.total, next
}
