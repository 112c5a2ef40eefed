// Package client is the Go client library of pbftnode. A Client signs each
// operation with the client's Ed25519 key, sends it to the replica it
// believes is the primary over its authenticated libp2p stream (with
// Config.BroadcastWhenUnknown, to every replica at once while it has no
// idea: no reply yet and no Config.Hint), and after a timeout to every
// replica; Invoke returns once ReplyQuorum replicas (f+1 for PBFT, so at
// least one correct one) sent the same result for the request in committed
// replies, or 2f+1 sent it with one view and sequence, tentative replies
// included (tentative execution: a message round sooner; see
// Config.CommittedRepliesOnly). Its errors say what a caller may assume:
// ErrRefused (no effect), ErrUnknownOutcome (it may take effect), and
// Client.Hint hands where the primary was to a later client. Replies need
// no signature: the Noise session of each stream binds them to that
// replica's key.
//
// Many goroutines may call Invoke on one Client at once. Their requests
// are signed together when they arrive together: a call that finds no
// signing under way signs its own request; the calls that arrive while one
// is under way are then signed as one bundle (crypto.SignRequests: one
// signature over a Merkle tree of their payloads, which each replica
// checks once for all of them), so a client with many callers makes about
// one signature per round of replies, and a lone call waits for nothing. Request numbers
// increase per client; the client keeps every outstanding number within
// the replicas' per-client window (execution.ClientWindow) so none is
// refused as too old. Read's read-only requests are not ordered and hold
// no place in that window: their numbers come from a space of their own
// (top bit set), with at most Config.Window reads outstanding.
package client
