// Package apphost runs an app.Application (the public contract of package
// app, in the replica's process or behind package appgrpc's client) under
// the execution.Executor, keeping the durability and snapshot design that
// package app documents. Opener gives the execution.Opener a runtime opens
// (node.Config.Application); the Host it opens is an
// execution.BatchRunner (one Execute per committed batch, also empty
// ones), BatchApplication, TransferableApplication and HealthReporter.
//
// # Records
//
// The host keeps, in the replica's database under storage.PrefixApp+"x/",
// in the executor's atomic batch (with e/last and the reply cache):
//
//	a/x/m                     manifest: snapshot sequence S, the application's
//	                          digest at S, chunk count, total bytes (52 bytes)
//	a/x/s/<uint32 BE index>   snapshot chunks of 1 to ChunkSize (1 MiB) bytes
//	a/x/j/<uint64 BE seq>     journal: the requests (client, request number,
//	                          payload) executed at seq, one entry per batch
//	                          after S, empty batches too
//	a/x/d                     sequence and application digest of the last
//	                          recorded batch (derived: not transferred)
//
// Every Options.SnapshotEvery batches, or when the journal would pass
// Options.MaxJournalBytes, the host takes a Snapshot after executing the
// batch and, in the same write, replaces the manifest and chunks and
// deletes the journal up to it. The host's Digest is SHA-256 of a domain,
// the recorded sequence and the application's digest, so checkpoints
// certify both.
//
// # Sync
//
// Before executing, after any failed call and after a rolled-back batch
// (one the application executed but the replica did not record), the host
// asks Info: the recorded State (or, with nothing recorded, any State at
// sequence 0) means in sync. Otherwise it Restores the application from
// the snapshot (State{0} and an empty reader without one: the initial
// state), executes the journal again in order, and requires Info to report
// the recorded State: an application that does not is broken (not
// deterministic or misreporting its State), an error that stops the
// replica (ErrBrokenApplication). So a restarted, empty or ahead-by-one
// application ends exactly at the recorded state: no operation lost, none
// applied twice on top of itself.
//
// # Availability
//
// A failed call (an error or a deadline, Options.CallTimeout) makes Health
// return "application at <Options.Where>: <error>" (logged once per
// outage); the host waits (exponential backoff from Options.RetryMin to
// Options.RetryMax), resyncs and retries until the call succeeds or Close
// (ExecuteBatch then fails with ErrClosed). While the replica is idle,
// Health itself probes an unhealthy application (Info, paced by the same
// backoff) so readiness returns when the application does; an application
// with a Health() error method of its own is asked too. A broken
// application stays reported. Stats counts resyncs, restores, replayed
// batches, retries and snapshots.
//
// An application that lost its state without any call failing must refuse
// (with an error) an Execute whose sequence is not its State's Sequence+1
// (the sequence package app promises it); the host then resyncs it. The host does not call
// Info before every batch (a round trip per batch for a remote
// application).
//
// # State transfer
//
// Manifest, chunks and journal are transferred entry by entry;
// CheckTransferEntry validates each alone (hostile bytes), and Reload
// checks they fit together (chunks those the manifest names, journal
// contiguous from S+1), restores and replays the application and records
// the State it then reports; the executor compares the resulting state
// digest with the certified one.
package apphost
