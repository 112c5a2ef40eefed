// Package p2p is pbftnode's libp2p transport. It owns the libp2p host
// (TCP, Noise and yamux only: no QUIC, relay, NAT port mapping, mDNS or
// ping), the two stream protocols (ReplicaProtocol between replicas and
// ClientProtocol between clients and replicas), the length-delimited frame
// codec with its size limit, one bounded outbound queue and writer goroutine
// per peer, reconnection with capped exponential backoff and jitter, and the
// connection gater that keeps peers outside the cluster configuration off
// the replica protocol. The member set may change while the host runs
// (Host.SetMembers): links follow it, and so do the gater and the replica
// stream handler.
//
// The package moves opaque frames: it neither decodes nor verifies what a
// frame carries. What it does guarantee is who sent a frame: Frame.From is
// the peer authenticated by the Noise handshake, and Frame.FromIndex is
// that peer's replica index from the cluster configuration (or -1 for a
// client). Delivery is best effort: frames can be dropped when a queue is
// full, when a stream breaks, or when the sender's own inbound queue is
// full, and each drop is counted in Stats.
//
// Inbound isolation: a replica host queues what it receives per source
// (each member, each established client key, and one queue shared by all
// other keys), bounded in frames and bytes, and hands it out through
// NextFrames with weighted fair queuing between replicas and clients and
// deficit round robin by bytes among sources, so a flooding sender loses
// only its own frames. A frame that has begun arriving must finish within
// a deadline scaled to its length; incomplete client frames and queued
// replies are bounded in bytes; a source reported with ReportFaulty is
// backed off (its frames dropped unverified) for a doubling period.
//
// Resources: the host uses libp2p's resource manager with its default
// limits scaled to the machine (as libp2p.New would by default) and
// Prometheus reporting off, and a connection manager that protects every
// member's connections and trims client connections above a few hundred.
// Frames are read with their size checked before allocation; bodies above
// 64 KiB grow as bytes arrive, so a stalled sender holds only what it sent,
// and only until the frame's deadline.
package p2p
