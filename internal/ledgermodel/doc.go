// Package ledgermodel is the simulators' model of the built-in ledger
// (package ledger): the operations their clients issue when a simulator
// runs the ledger (mints by the issuer client, transfers among the
// clients' accounts, balance and history reads), the results they
// observe, and the sequential specification porcupine checks client
// histories against for linearizability. Both internal/sim (PBFT) and
// internal/raftsim (Raft) use it.
//
// The model holds every account's balance and the total minted. It checks
// every result's balance and total, and that a transfer is refused exactly
// when the sender's balance (at the operation's linearization point) is
// lower than the amount, with that balance in the refusal. Histories are
// not part of the model: the ledger's invariants (checked on every
// correct replica after every executed batch) and the replicas' digest
// agreement cover them.
package ledgermodel
