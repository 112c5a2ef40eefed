// Package apppb holds the gRPC service and messages of pbftnode's
// out-of-process application protocol, generated from app.proto: the
// published contract for applications in any language. Package appgrpc is
// the replica's client of it; examples/grpc-app is a server.
//
// app.pb.go and app_grpc.pb.go are generated and committed; regenerate them
// with `go generate ./appgrpc/apppb` (needs protoc from Debian's
// protobuf-compiler, protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.5.1 on
// PATH).
package apppb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative app.proto
