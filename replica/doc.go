// Package replica is the driver of the PBFT core (protocol.Replica): the
// one place that says in which order what the core asks for is done. The
// PBFT runtime (node/pbft), the simulator (internal/sim) and the core's golden
// tests all drive the core through it; they differ only in what they plug
// in: storage, network, executor, snapshot keeping, observer.
//
// A Driver is goroutine-free and not safe for concurrent use: its caller
// owns it on one goroutine (the runtime's event loop, the simulator's
// step) and calls, in any interleaving:
//
//   - Recover once, first: load the view, the stable checkpoint and the
//     log from Storage, verify them again and restore the core (on a first
//     start, store view 0 instead); then hand Snapshots the state of the
//     stable checkpoint and of each executed checkpoint above it, rebuilt
//     from the executor's rollback records (RollbackExecutor), since the
//     snapshots taken when they executed died with the previous process;
//   - Step for a verified replica message (state chunks go to the state
//     transfer in progress), Submit for a verified client request (the
//     executor first: a request that executed is answered from its reply
//     cache, one too old is dropped, others go to the core), Tick for
//     each clock tick (the core's, the transfer's timeout, the Filter's
//     held frames and injections);
//   - Process after inputs, which handles every Ready in this order:
//     1. save the view (Storage.SaveViewState), when it changed;
//     2. send the messages marked BeforePersist (the primary's
//     PRE-PREPAREs, a backup's PREPAREs);
//     3. append the log entries (Storage.AppendLog) - durable on return;
//     or, when every message of the Ready was marked BeforePersist and it
//     changes no view, checkpoint, transfer or configuration, only write
//     them (Storage.WriteLog, no fsync): they need to be durable only
//     before this replica's COMMIT for their sequence, and the Ready
//     that sends it appends, which makes them durable too (see
//     logMustBeDurable; a Ready that writes executes all its committed
//     batches at once);
//     4. send the other messages, which may depend on the log;
//     5. execute the committed batches in order, reply to their clients,
//     and at each checkpoint sequence take a snapshot
//     (Snapshots.Checkpointed) and give the core its digest. The leading
//     committed batches that have no log entry in this Ready (and no
//     configuration change; none in a Ready that changes the view) are
//     executed between 2 and 3 instead: their decision rests on entries
//     earlier Readies made durable, and their replies need not wait for
//     the fsync of later sequences' entries (see executableBeforePersist).
//     When Storage is a BackgroundAppender, step 3 then starts before
//     those executions on another goroutine and is waited for after them,
//     so the fsync and the executions overlap;
//     6. store a new stable checkpoint's certificate
//     (Storage.SaveStableCheckpoint), let the executor forget the
//     rollback records at or below it, then tell Snapshots (which may
//     release older snapshots and delete the log at or below it) and
//     let the core forget requests the executor already ran;
//     7. when the core is behind, start (or retarget) a state transfer:
//     fetch the certified snapshot chunk by chunk from the certificate's
//     signers, check its digest, install it in the core, prune requests,
//     and hand Snapshots a snapshot of the installed state;
//     8. otherwise, when the Ready prepared the batch at the next sequence
//     to execute (Ready.Prepared: its COMMIT went in step 4, after the
//     durable append) and one of its requests accepts a tentative reply,
//     execute it without applying it (TentativeExecutor) and answer
//     those requests tentatively; step 5 of a later Ready writes that
//     execution when the batch commits, without answering them again
//     (tentative.go).
//
// Every message goes through the optional Filter (Byzantine fault
// injection) and its Delayer and Injector hooks before Network.Send.
// Process returns an error only when Storage or the Executor failed; the
// replica must then stop, and a restart (a new Driver over the same
// Storage and executor state) recovers.
//
// Contracts of the dependencies: Storage returns only once what it stored
// is durable; Network never blocks on a peer and never calls back into the
// Driver; Snapshots owns the snapshots it is handed; Observer methods are
// called on the caller's goroutine and must not call back. State requests
// from other replicas are the runtime's to serve (Step refuses them with
// ErrStateRequest), from the snapshots Snapshots keeps.
package replica
