package client

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

// askTentative reports whether cl, an ordered call about to send its
// request, asks for tentative replies (Request.tentative), and if so
// arms rule 2 for it (call.tentativeQuorum). It asks unless
// Config.CommittedRepliesOnly is set, the client is in crash-faults mode
// or cl's quorum is below 2, or 2*quorum-1 replies could not come from
// the members the client knows. It takes c.mu.
func (c *Client) askTentative(cl *call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 2*cl.quorum - 1
	if c.cfg.CommittedRepliesOnly || c.crashFaults || cl.readOnly || cl.quorum < 2 || t > c.n {
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

// TentativeAccepts returns how many ordered calls the client accepted on
// 2f+1 matching replies of one view and sequence (the rule for tentative
// replies), not on f+1 committed ones.
func (c *Client) TentativeAccepts() uint64 { return c.tentativeAccepts.Load() }
