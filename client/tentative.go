package client

import "time"

// Tentative replies (Castro and Liskov's tentative execution). A PBFT
// replica that prepared a batch and made its prepared certificate durable
// may execute the batch, without applying it to its state, and reply at
// once with Reply.tentative set, a message round before the batch
// commits; it does so only for requests that set Request.tentative (and
// ask for no receipt). With q = the call's quorum (ReplyQuorum, f+1) and
// T = 2q-1 (2f+1), an ordered call that asked accepts an outcome (a
// result or a refusal, as replyRecord.matches compares them) when
//
//  1. q replicas sent a committed (not tentative) reply with it, the rule
//     for every call; or
//  2. T replicas sent a reply with it, tentative or committed, all with
//     the same tag: the same view and the same sequence, not 0.
//
// Rule 2 is safe: of T = 2f+1 replicas at least f+1 are correct. If one
// of those sent a committed reply, the outcome is final. Otherwise f+1
// correct replicas prepared the same batch in that view at that sequence
// and their prepared certificates are durable, so every later view keeps
// the batch at that sequence (a view change's quorum of 2f+1 includes at
// least one of them), and the batch's result is the one computed on the
// committed state every earlier sequence left: the one they replied. A
// reply with sequence 0 (from a reply cache) names no batch and never
// counts under rule 2; a tentative refusal (replicas never send one) and
// a tentative reply to a call that did not ask (a read, a receipt
// request, a client with CommittedRepliesOnly) are ignored.
//
// Each replica has one record per call (call.recordLocked): its first
// committed reply stands; a tentative record gives way to the replica's
// committed reply, or to a tentative one of a higher view (or of the
// same view at another sequence: the newer), so a replica that prepared
// the batch again after a view change counts with its new tag only.
//
// A replica that answered a request tentatively sends no committed reply
// when its batch commits (unless it committed in another view), so a call
// that got fewer than T tentative replies waits for its retransmission,
// which the replicas' reply caches answer with committed replies. That
// costs a retransmission timeout whenever fewer than T replicas can
// answer this client promptly while the batch still commits: a replica
// that votes but never replies to clients (a faulty one) beside a
// correct one that is slow or cut off from this client, where committed
// replies would have needed only q. So a call that reaches its first
// retransmission holding a tentative reply but not its tentative quorum
// pauses the client's tentative replies: for Config.TentativePause, its
// calls ask for committed replies only (noteRetransmitLocked). A call
// that stalls for another reason (a primary gone) holds no tentative
// reply and pauses nothing.

// DefaultTentativePause is Config.TentativePause's default.
const DefaultTentativePause = 30 * time.Second

// askTentative reports whether cl, an ordered call about to send its
// request, asks for tentative replies (Request.tentative), and if so
// arms rule 2 for it (call.tentativeQuorum). It asks unless
// Config.CommittedRepliesOnly is set, the client is in crash-faults mode
// or cl's quorum is below 2, 2*quorum-1 replies could not come from the
// members the client knows, or tentative replies are paused
// (noteRetransmitLocked). It takes c.mu.
func (c *Client) askTentative(cl *call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 2*cl.quorum - 1
	if c.cfg.CommittedRepliesOnly || c.crashFaults || cl.readOnly || cl.quorum < 2 || t > c.n {
		return false
	}
	if !c.tentativePausedUntil.IsZero() && time.Now().Before(c.tentativePausedUntil) {
		return false
	}
	cl.tentativeQuorum = t
	return true
}

// recordLocked makes r, a reply from replica to cl, that replica's record
// when it counts and replaces nothing that stands (see the notes at
// the top of this file), and returns the record; nil when r changes nothing. c.mu must
// be held; replica indexes cl.replies.
func (cl *call) recordLocked(replica uint32, r *reply) *replyRecord {
	if r.tentative && (cl.tentativeQuorum == 0 || r.sequence == 0 || len(r.refusal) > 0) {
		return nil
	}
	rec := &cl.replies[replica]
	if rec.seen && !rec.supersededBy(r) {
		return nil
	}
	*rec = replyRecord{seen: true, body: r.result, view: r.view, sequence: r.sequence, tentative: r.tentative}
	if len(r.refusal) > 0 {
		rec.refused, rec.body = true, r.refusal
	}
	return rec
}

// supersededBy reports whether r, a later reply from the same replica,
// replaces the record a: only a tentative record gives way, to a
// committed reply, to a tentative one of a higher view, or to one of the
// same view at another sequence.
func (a *replyRecord) supersededBy(r *reply) bool {
	switch {
	case !a.tentative:
		return false // the first committed reply stands
	case !r.tentative:
		return true
	case r.view != a.view:
		return r.view > a.view
	default:
		return r.sequence != a.sequence
	}
}

// acceptedLocked reports whether rec's outcome is now accepted for cl
// (rec being the record that just changed: only sets that contain it can
// have grown), by rule 1 or, failing that, rule 2. It returns, appended
// to views, the views of the replies counted: the committed ones that
// match rec (rule 1; also when not accepted), or the T that share rec's
// tag (rule 2, all rec.view). c.mu must be held.
func (cl *call) acceptedLocked(rec *replyRecord, views []uint64) ([]uint64, bool) {
	for i := range cl.replies {
		if o := &cl.replies[i]; o.seen && !o.tentative && o.matches(rec) {
			views = append(views, o.view)
		}
	}
	if len(views) >= cl.quorum {
		return views, true
	}
	if cl.tentativeQuorum == 0 || rec.sequence == 0 {
		return views, false
	}
	tagged := 0
	for i := range cl.replies {
		if o := &cl.replies[i]; o.seen && o.view == rec.view && o.sequence == rec.sequence && o.matches(rec) {
			tagged++
		}
	}
	if tagged < cl.tentativeQuorum {
		return views, false
	}
	views = views[:0]
	for range tagged {
		views = append(views, rec.view)
	}
	cl.byTag = true
	return views, true
}

// noteRetransmitLocked, at a retransmission of cl, pauses the client's
// tentative replies when cl asked for them and holds a tentative reply
// but is not complete (see the notes above askTentative). c.mu must be
// held.
func (c *Client) noteRetransmitLocked(cl *call) {
	if cl.tentativeQuorum == 0 {
		return
	}
	select {
	case <-cl.done:
		return // complete
	default:
	}
	for i := range cl.replies {
		if r := &cl.replies[i]; r.seen && r.tentative {
			c.tentativePausedUntil = time.Now().Add(c.cfg.TentativePause)
			c.tentativePauses.Add(1)
			c.log.Info("client: tentative replies fell short of their quorum until the retransmission; asking for committed replies only for a while",
				"request", cl.number, "pause", c.cfg.TentativePause)
			return
		}
	}
}

// TentativePauses returns how many times the client paused asking for
// tentative replies (see Config.TentativePause).
func (c *Client) TentativePauses() uint64 { return c.tentativePauses.Load() }

// TentativeAccepts returns how many ordered calls the client accepted on
// 2f+1 matching replies of one view and sequence (the rule for tentative
// replies), not on f+1 committed ones.
func (c *Client) TentativeAccepts() uint64 { return c.tentativeAccepts.Load() }
