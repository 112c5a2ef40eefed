// Package launch starts the runtime a replica's configuration names
// (config.ConsensusPBFT or config.ConsensusRaft). It is the one place that
// knows every runtime: the runtimes (node/pbft, node/raftnode,
// node/floor) never import each other, only the shell (package node).
package launch
