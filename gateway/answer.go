package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/ledger"
	"github.com/pbftnode/pbftnode/receipt"
)

// Outcomes and exit codes, as `pbftnode client` reports them.
const (
	outcomeExecuted = "executed"
	outcomeUnknown  = "unknown"
	outcomeRefused  = "refused"
	outcomeNotSent  = "not-sent"

	exitNotSent = 1
	exitUsage   = 2
	exitUnknown = 3
	exitRefused = 4
)

// answer is the JSON of an executed operation. Value is the value as
// text when it is valid UTF-8; ValueBase64 always holds it.
type answer struct {
	Operation   string  `json:"operation"`
	Outcome     string  `json:"outcome"`
	OK          bool    `json:"ok"`
	Key         string  `json:"key,omitempty"`
	Found       *bool   `json:"found,omitempty"`
	Swapped     *bool   `json:"swapped,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	// The ledger's (and /healthz's) fields.
	Application string              `json:"application,omitempty"`
	Account     string              `json:"account,omitempty"`
	To          string              `json:"to,omitempty"`
	Amount      *uint64             `json:"amount,omitempty"`
	Balance     *uint64             `json:"balance,omitempty"`
	TotalMinted *uint64             `json:"total_minted,omitempty"`
	History     *[]ledger.EntryJSON `json:"history,omitempty"`
	// Receipt is the cluster's receipt for an ordered operation;
	// ReceiptError says why an executed operation has none (f+1 valid
	// receipts did not arrive within the call timeout).
	Receipt      *receipt.Receipt `json:"receipt,omitempty"`
	ReceiptError string           `json:"receipt_error,omitempty"`
}

// setValue sets the answer's value (text and base64).
func (a *answer) setValue(v []byte) {
	b := base64.StdEncoding.EncodeToString(v)
	a.ValueBase64 = &b
	if utf8.Valid(v) {
		s := string(v)
		a.Value = &s
	}
}

// errorAnswer is the JSON of a failure: the CLI's outcome and exit code.
type errorAnswer struct {
	Error    string `json:"error"`
	Outcome  string `json:"outcome"`
	ExitCode int    `json:"exit_code"`
}

// requestError is a request the gateway will not send (exit code 2).
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{status: http.StatusBadRequest, msg: msg} }

// refusal is an operation the application refused (an error result
// every correct replica agreed on).
type refusal struct{ reason string }

func (e *refusal) Error() string { return "the cluster refused the operation: " + e.reason }

// errUndecodable wraps a result f+1 replicas agreed on that the gateway
// cannot read: like the CLI, it cannot say what happened.
var errUndecodable = errors.New("undecodable result")

// classify maps an operation's error to an HTTP status and the CLI's
// outcome and exit code:
//
//	a bad request (exit 2)                        400 (413 too large)
//	refused by f+1 replicas or the application    409, exit 4
//	outcome unknown (no f+1 matching replies)     504, exit 3
//	undecodable agreed result                     502, exit 3
//	not sent: no window slot before the deadline  503, exit 1
//	not sent: any other reason                    502, exit 1
func classify(err error) (int, errorAnswer) {
	e := errorAnswer{Error: err.Error()}
	var req *requestError
	var ref *refusal
	switch {
	case errors.As(err, &req):
		e.Outcome, e.ExitCode = outcomeNotSent, exitUsage
		return req.status, e
	case errors.As(err, &ref) || errors.Is(err, client.ErrRefused):
		e.Outcome, e.ExitCode = outcomeRefused, exitRefused
		return http.StatusConflict, e
	case errors.Is(err, errUndecodable):
		e.Outcome, e.ExitCode = outcomeUnknown, exitUnknown
		return http.StatusBadGateway, e
	case errors.Is(err, client.ErrUnknownOutcome):
		e.Outcome, e.ExitCode = outcomeUnknown, exitUnknown
		return http.StatusGatewayTimeout, e
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		e.Outcome, e.ExitCode = outcomeNotSent, exitNotSent
		return http.StatusServiceUnavailable, e
	}
	e.Outcome, e.ExitCode = outcomeNotSent, exitNotSent
	return http.StatusBadGateway, e
}

// outcome is an executed operation's agreed result and its receipt (or
// why it has none).
type outcome struct {
	raw          []byte
	receipt      *receipt.Receipt
	receiptError string
}

// run runs the operation name (op) through call. An operation executed
// without a complete receipt is executed, not failed: its answer says why
// the receipt is missing.
func (g *Gateway) run(r *http.Request, name string, op []byte, ordered bool) (outcome, error) {
	raw, rec, err := g.call(r, op, ordered)
	if errors.Is(err, client.ErrIncompleteReceipt) {
		return outcome{raw: raw, receiptError: err.Error()}, nil
	}
	if err != nil {
		return outcome{}, fmt.Errorf("%s: %w", name, err)
	}
	return outcome{raw: raw, receipt: rec}, nil
}

func writeError(w http.ResponseWriter, status int, e errorAnswer) { writeJSON(w, status, e) }

// writeJSON writes v as the answer's JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the caller went away: nothing to tell it
}
