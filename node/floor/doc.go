// Package floor is the benchmark floor: a runtime that does the
// per-request work of PBFT's data path (client signature verification
// with the PBFT runtime's verifier, the primary's signed PRE-PREPAREs,
// replies) and none of its agreement, persistence or execution, to
// measure what the transport and the signatures alone cost. It gives no
// guarantee and must never serve real clients (see Node).
//
// Concurrency: verification workers (node.ReceiveLoop) verify frames in
// batches and answer what passed; on the primary they hand verified
// requests over a bounded channel to one batcher goroutine, which cuts
// and broadcasts PRE-PREPAREs. Everything else is the shell's
// (node.Shell).
package floor
