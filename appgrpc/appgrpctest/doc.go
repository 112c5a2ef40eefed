// Package appgrpctest checks, in tests, that an application server of the
// gRPC application protocol behaves as the built-in key-value store
// (execution.KV) does: byte-identical results and equal digests for the
// same operations, snapshots that restore into a fresh server. The
// examples' tests (examples/grpc-app in Go, examples/grpc-app-node in
// Node.js) run it against their servers.
package appgrpctest
