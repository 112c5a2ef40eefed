// Package config is a replica's and a client's configuration: the file
// formats (FileConfig in a replica's home/config.json, ClientFile in a
// client's client.json, the ClusterFile both share), their defaults, the
// command-line flags that override a replica's settings (RegisterFlags),
// and the rules a configuration must satisfy (Check).
//
// Contracts:
//   - Check is the one place the rules live, per consensus protocol: PBFT
//     needs n = 3f+1 >= 4 replicas, the Raft mode n >= 1; indexes in order,
//     public keys and addresses valid and unique, the key file readable
//     and matching this replica's public key, the client allowlist valid,
//     the listen and metrics addresses well formed, the tuning consistent.
//   - Load (what `pbftnode run` uses) and `pbftnode config validate` both
//     go through Check, so run refuses exactly what validate refuses;
//     Home.Summary is what validate prints about a valid home.
//   - The file format stays readable by older homes: the consensus choice
//     (ClusterFile.Consensus) keeps its JSON key "protocol"; unknown keys
//     are refused.
//   - config does not import node/: the runtime builds its in-memory
//     Config from a Home, not the other way round.
package config
