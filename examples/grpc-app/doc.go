// Command grpc-app is a standalone application server for pbftnode: an
// in-memory key-value store with the built-in store's operations, limits
// and result encoding (put, get, delete, cas as wire.KVOperation, results
// as wire.KVResult), served over the gRPC application protocol of
// appgrpc/apppb/app.proto. It imports nothing of pbftnode but the
// generated protocol package and the published wire messages, as an
// application in any language would use the two .proto files.
//
//	go run ./examples/grpc-app --listen 127.0.0.1:7000
//	go run ./examples/grpc-app --listen unix:///tmp/app.sock
//
// and point a replica at it with `pbftnode run --application
// grpc://127.0.0.1:7000`. Its state lives only in memory, on purpose: when
// it restarts empty, its replica restores it from the replica's own
// snapshot and journal (see app.proto's durability contract).
package main
