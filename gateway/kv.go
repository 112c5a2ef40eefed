package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/pbftnode/pbftnode/execution"
)

// kvPath is the key-value store's path; {key} is one path segment
// (percent-encode a "/" in a key as %2F).
const kvPath = "/v1/kv/{key}"

// receiptQuery is the query parameter that orders a read and returns its
// receipt.
var receiptQuery = [2]string{"receipt", "true: order the read and return the cluster's receipt for it (default false: the fast read-only path, no receipt)"}

func (g *Gateway) kvRoutes() []route {
	return []route{
		{method: http.MethodPut, pattern: kvPath, summary: "Put: set key to the request body (at most 1 MiB)", body: "value", bounded: true, handle: g.kvPut},
		{method: http.MethodGet, pattern: kvPath, summary: "Get: the key's value (found false when absent)", query: [][2]string{receiptQuery}, bounded: true, handle: g.kvGet},
		{method: http.MethodDelete, pattern: kvPath, summary: "Delete the key", bounded: true, handle: g.kvDelete},
		{method: http.MethodPost, pattern: kvPath + "/cas", summary: "Compare and swap: set key to new if its value is old (old absent or null: if the key is absent)", body: "CAS", bounded: true, handle: g.kvCAS},
	}
}

// pathKey returns the request's {key}, refusing one over MaxKeySize.
func pathKey(r *http.Request) ([]byte, error) {
	key := r.PathValue("key")
	if key == "" {
		return nil, badRequest("empty key")
	}
	if len(key) > MaxKeySize {
		return nil, badRequest(fmt.Sprintf("key of %d bytes: at most %d", len(key), MaxKeySize))
	}
	return []byte(key), nil
}

// wantsReceipt reads ?receipt=.
func wantsReceipt(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("receipt")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(fmt.Sprintf("receipt=%q: want true or false", v))
	}
	return b, nil
}

// readBody reads the request body, at most limit bytes (413 beyond).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, tooLarge(-1, limit)
	}
	if err != nil {
		return nil, badRequest(fmt.Sprintf("read the request body: %v", err))
	}
	return b, nil
}

func tooLarge(size, limit int64) error {
	msg := fmt.Sprintf("request body over %d bytes", limit)
	if size >= 0 {
		msg = fmt.Sprintf("request body of %d bytes: at most %d", size, limit)
	}
	return &requestError{status: http.StatusRequestEntityTooLarge, msg: msg}
}

func (g *Gateway) kvPut(w http.ResponseWriter, r *http.Request) (answer, error) {
	key, err := pathKey(r)
	if err != nil {
		return answer{}, err
	}
	value, err := readBody(w, r, MaxValueSize)
	if err != nil {
		return answer{}, err
	}
	return g.kvRun(r, "put", key, execution.EncodePut(key, value), true)
}

func (g *Gateway) kvGet(_ http.ResponseWriter, r *http.Request) (answer, error) {
	key, err := pathKey(r)
	if err != nil {
		return answer{}, err
	}
	ordered, err := wantsReceipt(r)
	if err != nil {
		return answer{}, err
	}
	return g.kvRun(r, "get", key, execution.EncodeGet(key), ordered)
}

func (g *Gateway) kvDelete(_ http.ResponseWriter, r *http.Request) (answer, error) {
	key, err := pathKey(r)
	if err != nil {
		return answer{}, err
	}
	return g.kvRun(r, "delete", key, execution.EncodeDelete(key), true)
}

// casBody is the JSON body of a cas: each value as text or as base64
// (not both); Old absent (or null) swaps only if the key is absent.
type casBody struct {
	Old       *string `json:"old"`
	OldBase64 *string `json:"old_base64"`
	New       *string `json:"new"`
	NewBase64 *string `json:"new_base64"`
}

func (g *Gateway) kvCAS(w http.ResponseWriter, r *http.Request) (answer, error) {
	key, err := pathKey(r)
	if err != nil {
		return answer{}, err
	}
	var body casBody
	if err := readJSON(w, r, &body); err != nil {
		return answer{}, err
	}
	old, err := casValue("old", body.Old, body.OldBase64)
	if err != nil {
		return answer{}, err
	}
	newValue, err := casValue("new", body.New, body.NewBase64)
	if err != nil {
		return answer{}, err
	}
	if newValue == nil {
		return answer{}, badRequest(`cas: "new" (or "new_base64") is required`)
	}
	return g.kvRun(r, "cas", key, execution.EncodeCAS(key, old, old == nil, newValue), true)
}

// casValue is one cas value from its text or base64 field: nil when both
// are absent.
func casValue(name string, text, b64 *string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, badRequest(fmt.Sprintf("cas: give %q or %q, not both", name, name+"_base64"))
	case b64 != nil:
		v, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("cas: %s_base64: %v", name, err))
		}
		return checkValueSize(name, v)
	case text != nil:
		return checkValueSize(name, []byte(*text))
	}
	return nil, nil
}

func checkValueSize(name string, v []byte) ([]byte, error) {
	if len(v) > MaxValueSize {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("cas: %s of %d bytes: at most %d", name, len(v), MaxValueSize)}
	}
	if v == nil {
		v = []byte{} // present but empty: not "absent"
	}
	return v, nil
}

// readJSON decodes the request's JSON body (at most maxJSONBodySize
// bytes, no unknown fields, one value) into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := readBody(w, r, maxJSONBodySize)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(fmt.Sprintf("malformed JSON body: %v", err))
	}
	if dec.More() {
		return badRequest("malformed JSON body: more than one value")
	}
	return nil
}

// kvRun runs a key-value operation (ordered with a receipt, or a fast
// read) and reads its result into an answer.
func (g *Gateway) kvRun(r *http.Request, name string, key, op []byte, ordered bool) (answer, error) {
	out, err := g.run(r, name, op, ordered)
	if err != nil {
		return answer{}, err
	}
	res, err := execution.DecodeResult(out.raw)
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w: %w", name, errUndecodable, err)
	}
	if res.Error != "" {
		return answer{}, &refusal{reason: res.Error}
	}
	a := answer{Operation: name, Outcome: outcomeExecuted, OK: true, Key: string(key), Receipt: out.receipt, ReceiptError: out.receiptError}
	ok := res.Ok
	switch name {
	case "get":
		a.Found = &ok
	case "cas":
		a.Swapped = &ok
	}
	if res.Value != nil || name == "get" && ok {
		a.setValue(res.Value)
	}
	return a, nil
}
