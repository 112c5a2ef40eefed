package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/client"
	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/receipt"
)

// clientUsage is `pbftnode client --help`, before the flags.
const clientUsage = `usage: pbftnode client --dir DIR [--key FILE] [--json] [--timeout D] [--old-absent] [--receipt FILE] OPERATION
operations (flags go before the operation):
  put K V | get K | delete K | cas K OLD NEW     the key-value store
       (with --old-absent: cas K NEW, swapping only if K is absent)
  ledger mint ACCOUNT AMOUNT                     the ledger (ACCOUNT, TO: the hex
  ledger transfer TO AMOUNT                      public key pbftnode keygen prints;
  ledger balance ACCOUNT                         transfer moves AMOUNT from the
  ledger history ACCOUNT [--limit N]             --key account to TO)

exit status:
  0  executed: the output says what happened (a get of a missing key prints
     "(not found)", a cas that did not swap prints "not swapped ...")
  2  usage or configuration error: nothing was sent
  3  outcome unknown: no f+1 matching replies before --timeout; the operation
     may or may not take effect (retrying a put, delete, cas, mint or transfer is
     a new operation)
  4  refused: f+1 replicas refused the operation, or the application did (a
     ledger overdraft, a mint by a key that is no issuer); it did not and will
     not take effect
  1  any other failure, before the operation was sent: it did not take effect
--json prints {"operation", "outcome": "executed"|"unknown"|"refused"|"not-sent",
"ok", ...} on stdout in every one of these cases but 2; "ok" is true only for
"executed", and then "found" (get) or "swapped" (cas) says what it did, and
"balance" (ledger balance) or "history" (ledger history) what the ledger holds;
"error" says why an operation was refused.`

// cliHintTimeout is how long a command waits for the primary its session
// slots remember before it asks every replica: one that does not answer
// that soon is likely gone (killed, or deposed by a view change), and
// asking everyone costs each replica one request, not a wrong result.
const cliHintTimeout = 150 * time.Millisecond

// Outcomes of a client command, as --json reports them.
const (
	outcomeExecuted = "executed"
	outcomeUnknown  = "unknown"
	outcomeRefused  = "refused"
	outcomeNotSent  = "not-sent"
)

// clientReport is what `pbftnode client --json` prints. OK means the
// operation was executed; Found (get) and Swapped (cas) say what it did.
type clientReport struct {
	Operation string  `json:"operation"`
	Outcome   string  `json:"outcome"`
	OK        bool    `json:"ok"`
	Found     *bool   `json:"found,omitempty"`
	Swapped   *bool   `json:"swapped,omitempty"`
	Value     *string `json:"value,omitempty"`
	Error     string  `json:"error,omitempty"`
	// The ledger's operations (see ledgerReport).
	ledgerReport
	// raw is the agreed result of an executed operation.
	raw []byte
}

// clientOperation is one operation a client command sends: its name in
// reports, its encoding, and how to read the agreed result into a report
// (refusal: the application's reason for refusing it, "" if executed).
type clientOperation struct {
	// app is the application kind the operation is for
	// (config.ApplicationKV or config.ApplicationLedger).
	app    string
	name   string
	op     []byte
	decode func(raw []byte, r *clientReport) (refusal string, err error)
	// text is the plain output of the executed operation.
	text func(r clientReport) string
	// readOnly: the operation changes nothing (get, ledger balance and
	// history), so it goes by client.Read unless a receipt is wanted.
	readOnly bool
}

func runClient(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	dir := fs.String("dir", "", "testnet directory holding client.json (required)")
	asJSON := fs.Bool("json", false, "print the outcome as JSON")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long (exit status 3: outcome unknown)")
	oldAbsent := fs.Bool("old-absent", false, "cas: swap only if the key is absent (then give K NEW)")
	keyPath := fs.String("key", "", "sign as this key file's account (a file from pbftnode keygen; default: the directory's client key)")
	receiptPath := fs.String("receipt", "", "PBFT: also gather f+1 replicas' signed receipts and write the receipt (JSON) to FILE; check it with pbftnode verify-receipt")
	fs.Usage = func() {
		fmt.Fprintln(stderr, clientUsage)
		fs.PrintDefaults()
	}
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	op, err := parseClientOperation(fs.Args(), *oldAbsent)
	if err != nil {
		return err
	}
	if err := checkClusterApplication(*dir, op); err != nil {
		return err
	}
	raw, rec, err := invokeOnce(*dir, *keyPath, *timeout, op.op, *receiptPath != "", op.readOnly)
	if errors.Is(err, errConfig) {
		return err
	}
	receiptErr := writeReceipt(*receiptPath, rec, err)
	if errors.Is(err, client.ErrIncompleteReceipt) {
		err = nil // executed: the result stands, the receipt is what failed
	}
	report, err := describeResult(op, raw, err)
	if err == nil {
		err = receiptErr
	}
	if *asJSON {
		if jerr := json.NewEncoder(stdout).Encode(report); jerr != nil && err == nil {
			err = fmt.Errorf("write result: %w", jerr)
		}
	} else if report.Outcome == outcomeExecuted {
		fmt.Fprintln(stdout, op.text(report))
	}
	return err
}

// parseClientOperation parses the operation arguments: a ledger operation
// or a key-value one.
func parseClientOperation(args []string, oldAbsent bool) (clientOperation, error) {
	if len(args) > 0 && args[0] == "ledger" {
		if oldAbsent {
			return clientOperation{}, fmt.Errorf("%w: --old-absent applies only to cas", errUsage)
		}
		return parseLedgerOperation(args[1:])
	}
	op, err := encodeOperation(args, oldAbsent)
	if err != nil {
		return clientOperation{}, err
	}
	return clientOperation{app: config.ApplicationKV, name: args[0], op: op, decode: decodeKVResult, text: clientReport.text, readOnly: args[0] == "get"}, nil
}

// checkClusterApplication refuses op when DIR/client.json says the
// cluster replicates another application: the key-value store and the
// ledger would each misread the other's operations (their encodings
// share field numbers). A client.json that does not say (hand-written,
// or a testnet of a library application) or names an application in
// another process lets every operation through.
func checkClusterApplication(dir string, op clientOperation) error {
	var cf config.ClientFile
	if err := config.ReadJSON(filepath.Join(dir, "client.json"), &cf); err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	if cf.Application == "" {
		return nil
	}
	spec, err := config.ParseApplication(cf.Application)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errConfig, filepath.Join(dir, "client.json"), err)
	}
	if !spec.Remote() && spec.Kind != op.app {
		return fmt.Errorf("%w: %s says the cluster replicates %s, not %s: not sending %s, which it would misread", errConfig, filepath.Join(dir, "client.json"), spec, op.app, op.name)
	}
	return nil
}

// invokeOnce sends one operation, signed with the key in keyPath (""
// for the directory's client key), from a session slot shared with the
// directory's other commands (see claimSession; a random session if none
// is free), starting from the primary the slot remembers, and stores
// where the primary turned out to be. With withReceipt it gathers a
// receipt too (client.InvokeWithReceipt); else a readOnly operation goes
// by client.Read (the read-only path, ordered if that fails). Errors in the directory's files
// and in the key file are errConfig.
func invokeOnce(dir, keyPath string, timeout time.Duration, op []byte, withReceipt, readOnly bool) ([]byte, *receipt.Receipt, error) {
	sess := claimSession(dir)
	defer sess.release()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var clusterID string
	var members []p2p.Member
	var opened uint64 // the epoch of the members the client was opened with
	for attempt := 0; ; attempt++ {
		c, err := openClientWith(dir, keyPath, func(cfg *client.Config) {
			cfg.HintTimeout, cfg.BroadcastWhenUnknown = cliHintTimeout, true
			if sess != nil {
				cfg.Session, cfg.FirstRequestNumber, cfg.Hint = sess.id, sess.first, sess.hint
			}
			useCachedMembership(dir, cfg)
			clusterID, opened = cfg.ClusterID, cfg.Epoch
			if members != nil {
				cfg.Replicas = members
			}
		})
		if err != nil {
			return nil, nil, err
		}
		raw, rec, err := invokeWith(ctx, c, op, withReceipt, readOnly)
		// Replies (a result or refusals) taught the client where the primary
		// is; without them its hint is only what the slots held.
		if h, ok := c.Hint(); ok && sess != nil && (err == nil || errors.Is(err, client.ErrRefused)) {
			_ = sess.remember(h, time.Now()) // a hint lost costs a later command a broadcast
		}
		if err == nil || !errors.Is(err, client.ErrUnknownOutcome) || attempt > 0 || sess == nil {
			learnIfMoved(dir, clusterID, c)
			c.Close()
			return raw, rec, err
		}
		// Too few members answered: the membership may have moved on.
		// Learn it and send the same request (same session and number:
		// executed at most once) to the members it names.
		learned, lerr := learnMembership(ctx, dir, clusterID, c)
		c.Close()
		if lerr != nil || learned.Epoch <= opened {
			return raw, rec, err
		}
		if members, lerr = client.Members(learned); lerr != nil {
			return raw, rec, err
		}
	}
}

// invokeWith sends op on c: with a receipt (client.InvokeWithReceipt), by
// the read-only path (client.Read) or ordered (client.Invoke).
func invokeWith(ctx context.Context, c *client.Client, op []byte, withReceipt, readOnly bool) ([]byte, *receipt.Receipt, error) {
	switch {
	case withReceipt:
		return c.InvokeWithReceipt(ctx, op)
	case readOnly:
		raw, err := c.Read(ctx, op)
		return raw, nil, err
	}
	raw, err := c.Invoke(ctx, op)
	return raw, nil, err
}

// describeOutcome is describeResult for the key-value operation named
// operation.
func describeOutcome(operation string, raw []byte, err error) (clientReport, error) {
	return describeResult(clientOperation{name: operation, decode: decodeKVResult}, raw, err)
}

// describeResult classifies what Invoke returned for op: executed (with
// what the result says), unknown (client.ErrUnknownOutcome) or refused
// (f+1 matching refusals, or a result the application refused). The error
// is nil only when the operation was executed.
func describeResult(op clientOperation, raw []byte, err error) (clientReport, error) {
	operation := op.name
	r := clientReport{Operation: operation}
	switch {
	case errors.Is(err, client.ErrUnknownOutcome):
		r.Outcome, r.Error = outcomeUnknown, err.Error()
		return r, fmt.Errorf("%s: the operation may or may not take effect: %w", operation, err)
	case errors.Is(err, client.ErrRefused):
		r.Outcome, r.Error = outcomeRefused, err.Error()
		return r, fmt.Errorf("%s: %w", operation, err)
	case err != nil:
		// Every other error of opening a client or of Invoke comes before
		// the request is sent.
		r.Outcome, r.Error = outcomeNotSent, err.Error()
		return r, fmt.Errorf("%s: not sent: %w", operation, err)
	}
	refusal, err := op.decode(raw, &r)
	if err != nil {
		// f+1 replicas agreed on bytes this client cannot read: it cannot
		// say what happened.
		r = clientReport{Operation: operation, Outcome: outcomeUnknown, Error: err.Error()}
		return r, fmt.Errorf("%s: undecodable result (%w): %w", operation, client.ErrUnknownOutcome, err)
	}
	if refusal != "" {
		r = clientReport{Operation: operation, Outcome: outcomeRefused, Error: refusal}
		return r, fmt.Errorf("%s: the cluster %w the operation: %s", operation, client.ErrRefused, refusal)
	}
	r.Outcome, r.OK, r.raw = outcomeExecuted, true, raw
	return r, nil
}

// decodeKVResult reads a key-value store result into r.
func decodeKVResult(raw []byte, r *clientReport) (string, error) {
	res, err := execution.DecodeResult(raw)
	if err != nil || res.Error != "" {
		return res.GetError(), err
	}
	ok := res.Ok
	switch r.Operation {
	case "get":
		r.Found = &ok
	case "cas":
		r.Swapped = &ok
	}
	if res.Value != nil {
		v := string(res.Value)
		r.Value = &v
	}
	return "", nil
}

// text is the plain output of an executed key-value operation: the
// form a receipt's "result" holds (receipt.FormatResult), so what the
// client prints is what verify-receipt checks.
func (r clientReport) text() string { return receipt.FormatResult(r.Operation, r.raw) }

func encodeOperation(args []string, oldAbsent bool) ([]byte, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: missing operation (put K V | get K | delete K | cas K OLD NEW)", errUsage)
	}
	for _, a := range args[1:] {
		if strings.TrimLeft(a, "-") == "old-absent" {
			return nil, fmt.Errorf("%w: flags go before the operation: %q", errUsage, a)
		}
	}
	if oldAbsent && args[0] != "cas" {
		return nil, fmt.Errorf("%w: --old-absent applies only to cas", errUsage)
	}
	want := map[string]int{"put": 3, "get": 2, "delete": 2, "cas": 4}
	n, ok := want[args[0]]
	if !ok {
		return nil, fmt.Errorf("%w: unknown operation %q", errUsage, args[0])
	}
	if args[0] == "cas" && oldAbsent {
		n = 3
	}
	if len(args) != n {
		return nil, fmt.Errorf("%w: %s takes %d arguments, got %d", errUsage, args[0], n-1, len(args)-1)
	}
	key := []byte(args[1])
	switch args[0] {
	case "put":
		return execution.EncodePut(key, []byte(args[2])), nil
	case "get":
		return execution.EncodeGet(key), nil
	case "delete":
		return execution.EncodeDelete(key), nil
	}
	if oldAbsent {
		return execution.EncodeCAS(key, nil, true, []byte(args[2])), nil
	}
	return execution.EncodeCAS(key, []byte(args[2]), false, []byte(args[3])), nil
}

// openClient builds a client from DIR/client.json, with a random session.
func openClient(dir string) (*client.Client, error) { return openClientWith(dir, "", nil) }

// openClientWith is openClient signing with the key in keyPath ("": the
// client key client.json names), with edit (if not nil) applied to the
// client's configuration before it starts.
func openClientWith(dir, keyPath string, edit func(*client.Config)) (*client.Client, error) {
	cfg, err := pbftnode.ClientConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	if keyPath != "" {
		if cfg.Key, err = readKey(keyPath); err != nil {
			return nil, fmt.Errorf("%w: %w", errConfig, err)
		}
	}
	if edit != nil {
		edit(&cfg)
	}
	return client.New(cfg)
}
