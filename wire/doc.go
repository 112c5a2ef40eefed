// Package wire holds the protobuf messages pbftnode sends over the network
// and the operation encoding of the built-in key-value application.
//
// wire.pb.go is generated from wire.proto and committed; regenerate it with
// `go generate ./wire` (protoc from Debian's protobuf-compiler and
// protoc-gen-go, see docs/development.md).
package wire

//go:generate protoc --go_out=. --go_opt=paths=source_relative wire.proto
