package gateway

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"

	"github.com/pbftnode/pbftnode/ledger"
)

// The ledger's paths. {account} is an account's 64 hex digits (an
// Ed25519 public key, as pbftnode keygen prints it).
const (
	ledgerMintPath     = "/v1/ledger/mint"
	ledgerTransferPath = "/v1/ledger/transfer"
	ledgerBalancePath  = "/v1/ledger/accounts/{account}/balance"
	ledgerHistoryPath  = "/v1/ledger/accounts/{account}/history"
)

func (g *Gateway) ledgerRoutes() []route {
	limit := [2]string{"limit", fmt.Sprintf("the newest entries to return (default %d, at most %d)", ledger.DefaultHistoryLimit, ledger.MaxHistoryLimit)}
	return []route{
		{method: http.MethodPost, pattern: ledgerMintPath, summary: "Mint amount to account (the gateway's key must be a ledger issuer)", body: "Mint", bounded: true, handle: g.ledgerMint},
		{method: http.MethodPost, pattern: ledgerTransferPath, summary: "Transfer amount from the gateway key's account to another", body: "Transfer", bounded: true, handle: g.ledgerTransfer},
		{method: http.MethodGet, pattern: ledgerBalancePath, summary: "An account's balance", query: [][2]string{receiptQuery}, bounded: true, handle: g.ledgerBalance},
		{method: http.MethodGet, pattern: ledgerHistoryPath, summary: "An account's newest history entries, oldest first", query: [][2]string{limit, receiptQuery}, bounded: true, handle: g.ledgerHistory},
	}
}

// mintBody and transferBody are the JSON bodies of mint and transfer.
type mintBody struct {
	Account string `json:"account"`
	Amount  uint64 `json:"amount"`
}

type transferBody struct {
	To     string `json:"to"`
	Amount uint64 `json:"amount"`
}

func parseAccount(field, s string) ([]byte, error) {
	account, err := ledger.ParseAccount(s)
	if err != nil {
		return nil, badRequest(fmt.Sprintf("%s: %v: want the 64 hex digits pbftnode keygen prints as public_key", field, err))
	}
	return account, nil
}

func (g *Gateway) ledgerMint(w http.ResponseWriter, r *http.Request) (answer, error) {
	var body mintBody
	if err := readJSON(w, r, &body); err != nil {
		return answer{}, err
	}
	account, err := parseAccount("account", body.Account)
	if err != nil {
		return answer{}, err
	}
	a := answer{Operation: "ledger mint", Account: hex.EncodeToString(account), Amount: &body.Amount}
	return g.ledgerRun(r, a, ledger.EncodeMint(account, body.Amount), true)
}

func (g *Gateway) ledgerTransfer(w http.ResponseWriter, r *http.Request) (answer, error) {
	var body transferBody
	if err := readJSON(w, r, &body); err != nil {
		return answer{}, err
	}
	to, err := parseAccount("to", body.To)
	if err != nil {
		return answer{}, err
	}
	a := answer{Operation: "ledger transfer", To: hex.EncodeToString(to), Amount: &body.Amount}
	if len(g.cfg.Account) > 0 {
		a.Account = hex.EncodeToString(g.cfg.Account)
	}
	return g.ledgerRun(r, a, ledger.EncodeTransfer(to, body.Amount), true)
}

// accountRead reads a ledger read's {account} and ?receipt=.
func accountRead(r *http.Request) (account []byte, ordered bool, err error) {
	if account, err = parseAccount("account", r.PathValue("account")); err != nil {
		return nil, false, err
	}
	ordered, err = wantsReceipt(r)
	return account, ordered, err
}

func (g *Gateway) ledgerBalance(_ http.ResponseWriter, r *http.Request) (answer, error) {
	account, ordered, err := accountRead(r)
	if err != nil {
		return answer{}, err
	}
	a := answer{Operation: "ledger balance", Account: hex.EncodeToString(account)}
	return g.ledgerRun(r, a, ledger.EncodeBalance(account), ordered)
}

func (g *Gateway) ledgerHistory(_ http.ResponseWriter, r *http.Request) (answer, error) {
	account, ordered, err := accountRead(r)
	if err != nil {
		return answer{}, err
	}
	var limit uint64
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.ParseUint(v, 10, 32); err != nil {
			return answer{}, badRequest(fmt.Sprintf("limit=%q: want a whole number below 2^32", v))
		}
	}
	a := answer{Operation: "ledger history", Account: hex.EncodeToString(account)}
	return g.ledgerRun(r, a, ledger.EncodeHistory(account, uint32(limit)), ordered)
}

// ledgerRun runs a ledger operation and reads its result into a (which
// names the operation and its accounts).
func (g *Gateway) ledgerRun(r *http.Request, a answer, op []byte, ordered bool) (answer, error) {
	out, err := g.run(r, a.Operation, op, ordered)
	if err != nil {
		return answer{}, err
	}
	res, err := ledger.DecodeResult(out.raw)
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w: %w", a.Operation, errUndecodable, err)
	}
	if res.Error != "" {
		return answer{}, &refusal{reason: res.Error}
	}
	balance, total := res.Balance, res.TotalMinted
	a.Outcome, a.OK, a.Balance, a.TotalMinted = outcomeExecuted, true, &balance, &total
	a.Receipt, a.ReceiptError = out.receipt, out.receiptError
	if a.Operation == "ledger history" {
		entries := make([]ledger.EntryJSON, 0, len(res.History))
		for _, e := range res.History {
			entries = append(entries, ledger.EntryJSONOf(e))
		}
		a.History = &entries
	}
	return a, nil
}
