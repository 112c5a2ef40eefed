package raftmode

// UnconfirmedReadIndexes counts c's ReadIndex requests raft has not
// confirmed yet.
func UnconfirmedReadIndexes(c *Core) int { return c.reads.unconfirmed() }
