package raftmode

import "github.com/pbftnode/pbftnode/execution"

// maxDirect bounds the requests a follower remembers as sent to it
// directly (Core.direct); past it, it forgets them all, and their
// clients get their results from the leader or, retransmitting, from any
// replica's reply cache.
const maxDirect = 4096

// noteDirect remembers that a client sent request k to this replica while
// it did not lead, so that it answers the request when it applies it.
func (c *Core) noteDirect(k requestKey) {
	if c.isLeader {
		return
	}
	if len(c.direct) >= maxDirect {
		clear(c.direct)
	}
	c.direct[k] = struct{}{}
}

// answers appends to out the replies of one applied entry that this
// replica sends. A leader answers every request: a client sends to the
// replica it believes leads, and the leader that applies an entry is
// the one it most likely reached. A follower answers only the requests a
// client sent to it (a stale leader hint, or a retransmission to every
// replica); every client of the benchmark and the library keeps a stream
// to every replica, so answering all from every replica sent each
// result n times, and the client read and dropped n-1 of them. A
// retransmitted request that was applied already is answered at once by
// any replica from the executor's reply cache (Core.Submit), so a client
// that cannot reach the leader still gets its result.
func (c *Core) answers(out, replies []execution.Reply) []execution.Reply {
	if c.isLeader {
		if len(c.direct) > 0 {
			for _, r := range replies {
				delete(c.direct, requestKey{string(r.ClientID), r.RequestNumber})
			}
		}
		return append(out, replies...)
	}
	if len(c.direct) == 0 {
		return out
	}
	for _, r := range replies {
		k := requestKey{string(r.ClientID), r.RequestNumber}
		if _, ok := c.direct[k]; ok {
			delete(c.direct, k)
			out = append(out, r)
		}
	}
	return out
}
