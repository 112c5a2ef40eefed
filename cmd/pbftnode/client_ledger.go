package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/ledger"
)

// ledgerReport is what `pbftnode client --json ledger ...` adds to the
// report of an executed operation. Balance is, after the operation, the
// balance of Account (mint, balance, history) or of the sender (transfer);
// TotalMinted is the total minted so far; History is an account's newest
// entries, oldest first.
type ledgerReport struct {
	Account     string              `json:"account,omitempty"`
	To          string              `json:"to,omitempty"`
	Amount      *uint64             `json:"amount,omitempty"`
	Balance     *uint64             `json:"balance,omitempty"`
	TotalMinted *uint64             `json:"total_minted,omitempty"`
	History     *[]ledger.EntryJSON `json:"history,omitempty"`
}

// ledgerUsage lists the ledger operations, for errors.
const ledgerUsage = "ledger mint ACCOUNT AMOUNT | ledger transfer TO AMOUNT | ledger balance ACCOUNT | ledger history ACCOUNT [--limit N]"

// parseLedgerOperation parses the arguments after `ledger`: the operation,
// its account (ACCOUNT or TO, hex) and its amount or history limit.
func parseLedgerOperation(args []string) (clientOperation, error) {
	if len(args) == 0 {
		return clientOperation{}, fmt.Errorf("%w: missing ledger operation (%s)", errUsage, ledgerUsage)
	}
	name, args := args[0], args[1:]
	var limit uint32
	if name == "history" {
		var err error
		if args, limit, err = parseHistoryArgs(args); err != nil {
			return clientOperation{}, err
		}
	}
	want := map[string]int{"mint": 2, "transfer": 2, "balance": 1, "history": 1}
	n, ok := want[name]
	if !ok {
		return clientOperation{}, fmt.Errorf("%w: unknown ledger operation %q (%s)", errUsage, name, ledgerUsage)
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return clientOperation{}, fmt.Errorf("%w: flags go before the operation: %q", errUsage, a)
		}
	}
	if len(args) != n {
		return clientOperation{}, fmt.Errorf("%w: ledger %s takes %d argument(s), got %d (%s)", errUsage, name, n, len(args), ledgerUsage)
	}
	account, err := ledger.ParseAccount(args[0])
	if err != nil {
		return clientOperation{}, fmt.Errorf("%w: %s: want the 64 hex digits pbftnode keygen prints as public_key", errUsage, err)
	}
	var amount uint64
	if n == 2 {
		if amount, err = strconv.ParseUint(args[1], 10, 64); err != nil {
			return clientOperation{}, fmt.Errorf("%w: amount %q: want a whole number", errUsage, args[1])
		}
	}
	op := clientOperation{app: config.ApplicationLedger, name: "ledger " + name}
	switch name {
	case "mint":
		op.op = ledger.EncodeMint(account, amount)
	case "transfer":
		op.op = ledger.EncodeTransfer(account, amount)
	case "balance":
		op.op = ledger.EncodeBalance(account)
	case "history":
		op.op = ledger.EncodeHistory(account, limit)
	}
	op.decode = func(raw []byte, r *clientReport) (string, error) {
		return decodeLedgerResult(name, account, amount, raw, r)
	}
	op.text = ledgerText
	op.readOnly = name == "balance" || name == "history"
	return op, nil
}

// parseHistoryArgs takes --limit N from anywhere in history's arguments
// and returns the others.
func parseHistoryArgs(args []string) (rest []string, limit uint32, err error) {
	fs := flag.NewFlagSet("ledger history", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Uint("limit", 0, "")
	for {
		if err := fs.Parse(args); err != nil {
			return nil, 0, fmt.Errorf("%w: ledger history: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest, args = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	if *n > 1<<32-1 {
		return nil, 0, fmt.Errorf("%w: ledger history: --limit %d is too large", errUsage, *n)
	}
	return rest, uint32(*n), nil
}

// decodeLedgerResult reads the ledger's result of the operation name on
// account (mint, balance, history: ACCOUNT; transfer: TO) into r.
func decodeLedgerResult(name string, account []byte, amount uint64, raw []byte, r *clientReport) (string, error) {
	res, err := ledger.DecodeResult(raw)
	if err != nil || res.Error != "" {
		return res.GetError(), err
	}
	balance, total := res.Balance, res.TotalMinted
	r.Balance, r.TotalMinted = &balance, &total
	switch name {
	case "transfer":
		r.To, r.Amount = hex.EncodeToString(account), &amount
	case "mint":
		r.Account, r.Amount = hex.EncodeToString(account), &amount
	default:
		r.Account = hex.EncodeToString(account)
	}
	if name == "history" {
		entries := make([]ledger.EntryJSON, 0, len(res.History))
		for _, e := range res.History {
			entries = append(entries, ledger.EntryJSONOf(e))
		}
		r.History = &entries
	}
	return "", nil
}

// ledgerText is the plain output of an executed ledger operation.
func ledgerText(r clientReport) string {
	switch r.Operation {
	case "ledger mint":
		return fmt.Sprintf("minted %d to %s: its balance is %d (total minted %d)", *r.Amount, r.Account, *r.Balance, *r.TotalMinted)
	case "ledger transfer":
		return fmt.Sprintf("transferred %d to %s: the sender's balance is %d", *r.Amount, r.To, *r.Balance)
	case "ledger balance":
		return strconv.FormatUint(*r.Balance, 10)
	}
	if len(*r.History) == 0 {
		return "(no history)"
	}
	var b strings.Builder
	for i, e := range *r.History {
		if i > 0 {
			b.WriteByte('\n')
		}
		from := e.From
		if e.Kind == "mint" {
			from = "(mint)"
		}
		fmt.Fprintf(&b, "%d %s %d from %s to %s, balance after %d", e.SequenceInAccount, e.Kind, e.Amount, from, e.To, e.BalanceAfter)
	}
	return b.String()
}
