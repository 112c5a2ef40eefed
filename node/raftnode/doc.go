// Package raftnode is the runtime of the crash-fault Raft mode: a
// raftmode.Core driven by a raftreplica.Driver, over the shell
// (node.Shell: libp2p transport on p2p.RaftProtocol, database, operations
// HTTP, lifetime) with the executor and key-value application of the PBFT
// runtime and the same client protocol and metric names.
//
// Concurrency: one receiving goroutine (node.ReceiveLoop) decodes frames,
// in order per replica, and hands Raft messages, state chunks and client
// requests to the event loop and state requests to the snapshot server;
// the event loop (node.EventLoop) owns the driver (and through it the
// core, the executor and the state-transfer fetcher); the snapshot server
// owns the two latest snapshots and answers state requests. They talk over
// bounded channels. Trust model: crash faults only; a client is
// authenticated by its stream's Noise session, so request signatures are
// not checked.
//
// Membership (members.go): the executor applies configuration changes
// under the Raft mode's rules; the transport admits the applied
// configuration's members and follows each change (p2p.Host.SetMembers).
// A spare learns the configuration with config_query reads (a goroutine
// of its own) until one names it, then admits the members and is brought
// in by the leader; a removed replica idles, and one removed while it was
// down or cut off learns it by asking the members (removal.go).
package raftnode
