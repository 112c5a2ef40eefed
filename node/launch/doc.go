// Package launch starts the runtime a replica's configuration names
// (config.ConsensusPBFT or config.ConsensusRaft), with the application its
// configuration names (Application: the key-value store, the ledger, or an
// application in another process). It is the one place that
// knows both consensus runtimes (node/pbft and node/raftnode); the
// benchmark floor (node/floor), an instrument rather than a consensus
// protocol, is started directly by `pbftnode run --benchmark-floor` and
// internal/localnet. The runtimes never import each other, only the shell
// (package node).
package launch
