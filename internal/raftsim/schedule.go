package raftsim

import (
	"fmt"

	"github.com/pbftnode/pbftnode/internal/simkit"
)

// schedule is the seed's plan for the network, crashes and wipes
// (simkit.Faults, with asymmetric partitions). Until CalmAt the network
// drops, duplicates and delays messages, partitions form and heal and
// replicas crash and restart (at most a minority down at once); from
// CalmAt on every replica runs, the network is whole and delivers
// everything within simkit.MaxNetworkDelay ticks. A planned wipe happens after
// calm, at the first tick from wipeFrom on at which the cluster has a
// stable leader whose whole log every other replica holds, committed.
type schedule struct {
	*simkit.Faults[*host]

	// wipe: whether a replica's database is lost once; wipeFrom is the
	// earliest tick; wipeCompacted, whether the leader's log must be
	// compacted first (so that the wiped replica needs a snapshot);
	// wipedAt when it happened (0 before).
	wipe          bool
	wipeLeader    bool // the wipe crashes the leader too
	wipeFrom      int64
	wipeCompacted bool
	wipedAt       int64
	wipedReplica  int
	// isolate is ScenarioIsolateLeader; isolatedAt when it cut the leader
	// off (0 before).
	isolate    bool
	isolatedAt int64
	isolated   uint32
}

func newSchedule(w *world) *schedule {
	r := w.rng
	s := &schedule{Faults: simkit.DrawFaults[*host](r, w.n, max(1, (w.n-1)/2))}
	s.Asymmetric = true
	s.wipe = w.n >= 3 && r.IntN(4) == 0 && w.reconf == nil
	s.wipeLeader = !w.cfg.PlainWipes
	s.Arm(r)
	s.wipeFrom = s.CalmAt + WipeSettleTicks
	s.wipedReplica = -1
	return s
}

// newWipeSchedule is the wipe scenarios': calm from the start, and one
// wipe once the leader's log no longer starts at the beginning.
func newWipeSchedule(w *world, crashLeader bool) *schedule {
	s := &schedule{Faults: simkit.CalmFaults[*host](w.n),
		wipe: true, wipeLeader: crashLeader, wipeFrom: 1, wipeCompacted: true, wipedReplica: -1}
	s.Asymmetric = true
	return s
}

func (s *schedule) String() string {
	str := s.Faults.String()
	if s.isolate {
		str += fmt.Sprintf(" isolate-leader>=%d for %d", IsolateFromTicks, IsolateTicks)
	}
	if s.wipe {
		str += fmt.Sprintf(" wipe>=%d", s.wipeFrom)
		if s.wipeLeader {
			str += "+leader-crash"
		}
		if s.wipeCompacted {
			str += ",compacted"
		}
	}
	return str
}

func (s *schedule) wipePending() bool {
	return (s.wipe && s.wipedAt == 0) || (s.isolate && s.isolatedAt == 0)
}

// apply carries out what the schedule plans for this tick.
func (s *schedule) apply(w *world) {
	if w.now == s.CalmAt {
		s.Heal()
		for _, h := range w.hosts {
			if h.down {
				delete(s.DownUntil, h)
				h.restart()
			}
		}
	}
	if w.calm() {
		for _, h := range w.hosts {
			// Only a leader crashed by a wipe is down after calm.
			if s.RestartDue(h, w.now) {
				h.restart()
			}
		}
		s.applyWipe(w)
		s.applyIsolate(w)
		return
	}
	for _, h := range w.hosts {
		if h.down && s.RestartDue(h, w.now) {
			h.restart()
		}
	}
	if s.Partition(w.rng, w.now) {
		w.res.Partitions++
	}
	s.crash(w)
}

// crash crashes a random replica (the leader in half of the cases) while
// fewer than MaxDown are down.
func (s *schedule) crash(w *world) {
	if !s.CrashDue(w.rng, w.now, 0) {
		return
	}
	h := w.hosts[w.rng.IntN(len(w.hosts))]
	if w.rng.IntN(2) == 0 {
		for _, l := range w.hosts {
			if !l.down && l.core.Status().IsLeader {
				h = l
			}
		}
	}
	if h.down {
		return
	}
	h.crash()
	s.Down(w.rng, h, w.now, 10, 300)
	w.res.Crashes++
}

// applyWipe wipes a follower once the wipe is safe in Raft's model: Raft
// assumes durable storage, and a wiped replica forgets its vote and its
// log. With a stable leader whose whole log the other replicas hold,
// committed, in one term, and no message from before the settle time in
// flight, nothing the wiped replica acknowledged or voted for can still
// count: every committed entry is on a majority without it, and every
// later election is in a later term.
func (s *schedule) applyWipe(w *world) {
	if !s.wipe || s.wipedAt != 0 || w.now < s.wipeFrom {
		return
	}
	leader := w.stableLeader()
	if leader == nil {
		return
	}
	if first, err := leader.raftLog.FirstIndex(); s.wipeCompacted && (err != nil || first <= 2) {
		return
	}
	victim := w.hosts[(int(leader.id)+1+w.rng.IntN(w.n-1))%w.n]
	s.wipedAt, s.wipedReplica = w.now, int(victim.id)
	w.res.Wipes++
	w.log.Debug("wipe", "replica", victim.id, "leader", leader.id, "leader_crash", s.wipeLeader)
	if s.wipeLeader {
		// With the leader's whole log on every other replica, a majority
		// without the wiped replica elects a replica holding every
		// committed entry.
		leader.crash()
		s.DownUntil[leader] = w.now + WipeLeaderDownTicks
		w.res.Crashes++
	}
	if err := victim.wipe(); err != nil {
		w.violate(KindInternal, err.Error())
	}
}

// newIsolateSchedule is ScenarioIsolateLeader's: calm until the leader is
// cut off.
func newIsolateSchedule(w *world) *schedule {
	s := &schedule{Faults: simkit.CalmFaults[*host](w.n), isolate: true, wipeFrom: IsolateFromTicks, wipedReplica: -1}
	return s
}

// applyIsolate cuts the stable leader off from the other replicas for
// IsolateTicks, once IsolateFromTicks have passed: the schedule is not calm
// until then, and heals at calm.
func (s *schedule) applyIsolate(w *world) {
	if !s.isolate || s.isolatedAt != 0 || w.now < IsolateFromTicks {
		return
	}
	leader := w.stableLeader()
	if leader == nil {
		return
	}
	s.Group[leader.id] = 1
	s.isolatedAt, s.CalmAt, s.isolated = w.now, w.now+IsolateTicks, leader.id
	w.res.Partitions++
	w.log.Debug("isolate leader", "replica", leader.id, "until", s.CalmAt)
}

// staleLeader returns the replica cut off by ScenarioIsolateLeader while it
// is cut off.
func (s *schedule) staleLeader(now int64) (uint32, bool) {
	return s.isolated, s.isolate && s.isolatedAt > 0 && now < s.CalmAt
}
