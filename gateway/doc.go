// Package gateway serves a small HTTP/JSON API in front of a pbftnode
// cluster: the key-value store (PUT, GET, DELETE and cas on /v1/kv/{key})
// or the built-in ledger (mint, transfer, balance, history under
// /v1/ledger/), an OpenAPI 3.0 document at /openapi.json and /healthz.
//
// A Gateway is one pbftnode client identity (its Cluster): every operation
// it sends is signed with that key, and on the ledger the key is the
// account transfers move funds from. Writes, and reads asked with
// ?receipt=true, are ordered and answered with the receipt the cluster
// signed for them (the same JSON `pbftnode client --receipt` writes);
// plain reads take the client's fast read-only path.
//
// Every answer is JSON. Errors are {"error", "outcome", "exit_code"} with
// the outcomes and exit codes of `pbftnode client` (executed 0, not-sent 1,
// usage 2, unknown 3, refused 4) mapped to HTTP statuses (see
// docs/gateway.md). The gateway bounds what a caller can make it hold:
// request bodies (MaxValueSize plus slack), keys (MaxKeySize), headers,
// the time of each cluster call (Config.CallTimeout) and the number of
// operations in flight (Config.MaxInFlight; 503 with Retry-After beyond).
package gateway
