package raftmode

import "go.etcd.io/raft/v3/raftpb"

// ClientKeySize is clientKeySize, for the external tests.
const ClientKeySize = clientKeySize

// ConfState returns raft's configuration, for the external tests.
func (c *Core) ConfState() *raftpb.ConfState { return c.confState }
