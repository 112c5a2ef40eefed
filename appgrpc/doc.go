// Package appgrpc is the replica's client of pbftnode's out-of-process
// application protocol: the gRPC service Application of apppb/app.proto,
// which an application in any language serves (examples/grpc-app is one in
// Go). Dial returns a Client, an app.Application (and io.Closer) that the
// replica drives like an application in its own process; package apphost
// keeps the durability and snapshot design of package app around it.
//
// Targets are grpc://HOST:PORT or unix:///PATH (ParseTarget; the
// configuration's `application` field). The connection has no TLS: the
// application runs beside its replica, in the same trust domain, so use a
// unix socket or a loopback or private-network address.
//
// Everything an application answers is checked before it is used: one
// result per operation, 32-byte digests, chunks of at most MaxChunkBytes, a
// snapshot of at most Options.MaxSnapshotBytes, messages of at most
// Options.MaxMessageBytes; a violation is an error wrapping
// ErrInvalidResponse that names it. Every call has a deadline, and Close
// makes calls in progress return (errors wrapping ErrClosed).
package appgrpc
