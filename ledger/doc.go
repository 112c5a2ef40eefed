// Package ledger is the built-in ledger application (config
// `application: ledger`), the reference application for permissioned
// ledgers.
//
// Accounts are 32-byte Ed25519 public keys, written as the 64 hex digits
// `pbftnode keygen` prints (ParseAccount). The account an operation acts
// for is the first 32 bytes of the request's client ID, which the replica
// authenticates (the request is signed by that key), so a transfer moves
// the funds of the key that signed it and no other.
//
// Operations are encoded wire.LedgerOperation messages (EncodeMint,
// EncodeTransfer, EncodeBalance, EncodeHistory); results are
// deterministically marshalled wire.LedgerResult messages (DecodeResult).
// The rules:
//
//   - mint ACCOUNT AMOUNT: only by a sender whose key is one of the
//     issuer keys of the cluster configuration; ACCOUNT is any 32-byte
//     account, AMOUNT > 0, and the total minted must not overflow uint64.
//   - transfer TO AMOUNT: moves AMOUNT > 0 from the sender to the 32-byte
//     account TO; refused with "insufficient funds: balance B, amount A"
//     when the sender's balance B is lower than A.
//   - balance ACCOUNT and history ACCOUNT [LIMIT] change nothing; history
//     returns the newest LIMIT entries (0 means 100, at most 1000), newest
//     last.
//
// Every refusal is a result with Error set that changes nothing. A plain
// Execute (no sender) is refused. Each mint and transfer adds one history
// entry to every account it touches, numbered from 1 per account in
// execution order, with the account's balance after it.
//
// Invariants (Invariants checks them by walking the state; the simulators
// call it after every step): no balance is negative (balances are
// unsigned and a transfer never takes more than the balance), the sum of
// the balances equals the total minted, every history is numbered without
// gaps, each entry's balance follows from the previous one, and the last
// entry's balance is the account's balance. Every transfer is applied
// exactly once because the executor executes each request once.
//
// Ledger is built on an execution.KV: its state is KV entries under keys
// "l/…" (see keys.go), so its digest, its batches and read cache, its
// snapshots and its state transfer are the KV's, and its histories are
// part of the digest (identical on every correct replica, or the
// checkpoints disagree).
package ledger
