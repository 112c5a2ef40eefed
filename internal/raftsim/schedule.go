package raftsim

import "fmt"

// schedule is the seed's plan for the network, crashes and wipes. Until
// calmAt the network drops, duplicates and delays messages, partitions
// form and heal and replicas crash and restart (at most a minority down at
// once); from calmAt on every replica runs, the network is whole and
// delivers everything within MaxNetworkDelay ticks. A planned wipe happens
// after calm, at the first tick from wipeFrom on at which the cluster has
// a stable leader whose whole log every other replica holds, committed.
type schedule struct {
	calmAt    int64
	dropRate  float64
	dupRate   float64
	spikeRate float64
	maxDelay  int64

	partitions bool
	// group splits the replicas in two; with oneWay, group 1 still hears
	// group 0 (an asymmetric partition).
	group          []int
	oneWay         bool
	partitionUntil int64
	nextPartition  int64

	crashes   bool
	maxDown   int
	nextCrash int64
	downUntil map[*host]int64

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
}

func newSchedule(w *world) *schedule {
	r := w.rng
	s := &schedule{
		calmAt:     300 + r.Int64N(700),
		dropRate:   r.Float64() * 0.2,
		dupRate:    r.Float64() * 0.05,
		spikeRate:  r.Float64() * 0.1,
		maxDelay:   1 + r.Int64N(8),
		partitions: r.IntN(10) < 6,
		crashes:    r.IntN(10) < 6,
		maxDown:    max(1, (w.n-1)/2),
		group:      make([]int, w.n),
		downUntil:  map[*host]int64{},
		wipe:       w.n >= 3 && r.IntN(4) == 0,
		wipeLeader: !w.cfg.PlainWipes,
	}
	s.nextPartition = r.Int64N(200)
	s.nextCrash = r.Int64N(300)
	s.wipeFrom = s.calmAt + WipeSettleTicks
	s.wipedReplica = -1
	return s
}

// newWipeSchedule is the wipe scenarios': calm from the start, and one
// wipe once the leader's log no longer starts at the beginning.
func newWipeSchedule(w *world, crashLeader bool) *schedule {
	return &schedule{
		calmAt: 0, maxDelay: 1, group: make([]int, w.n), downUntil: map[*host]int64{},
		wipe: true, wipeLeader: crashLeader, wipeFrom: 1, wipeCompacted: true, wipedReplica: -1,
	}
}

func (s *schedule) String() string {
	str := fmt.Sprintf("calm@%d drop=%.2f dup=%.2f spike=%.2f delay<=%d partitions=%v crashes=%v",
		s.calmAt, s.dropRate, s.dupRate, s.spikeRate, s.maxDelay, s.partitions, s.crashes)
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

func (s *schedule) wipePending() bool { return s.wipe && s.wipedAt == 0 }

// apply carries out what the schedule plans for this tick.
func (s *schedule) apply(w *world) {
	if w.now == s.calmAt {
		clear(s.group)
		for _, h := range w.hosts {
			if h.down {
				delete(s.downUntil, h)
				h.restart()
			}
		}
	}
	if w.calm() {
		for _, h := range w.hosts {
			if until, ok := s.downUntil[h]; ok && w.now >= until {
				// Only a leader crashed by a wipe is down after calm.
				delete(s.downUntil, h)
				h.restart()
			}
		}
		s.applyWipe(w)
		return
	}
	for _, h := range w.hosts {
		if h.down && w.now >= s.downUntil[h] {
			delete(s.downUntil, h)
			h.restart()
		}
	}
	if s.partitions {
		s.partition(w)
	}
	if s.crashes {
		s.crash(w)
	}
}

func (s *schedule) partition(w *world) {
	switch {
	case s.partitionUntil > 0 && w.now >= s.partitionUntil:
		clear(s.group)
		s.partitionUntil = 0
		s.nextPartition = w.now + w.rng.Int64N(300)
	case s.partitionUntil == 0 && w.now >= s.nextPartition:
		for i := range s.group {
			s.group[i] = w.rng.IntN(2)
		}
		s.oneWay = w.rng.IntN(4) == 0
		s.partitionUntil = w.now + 20 + w.rng.Int64N(150)
		w.res.Partitions++
	}
}

// crash crashes a random replica (the leader in half of the cases) while
// fewer than maxDown are down.
func (s *schedule) crash(w *world) {
	if w.now < s.nextCrash {
		return
	}
	s.nextCrash = w.now + 50 + w.rng.Int64N(400)
	if len(s.downUntil) >= s.maxDown {
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
	s.downUntil[h] = w.now + 10 + w.rng.Int64N(300)
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
	if !s.wipePending() || w.now < s.wipeFrom {
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
		s.downUntil[leader] = w.now + WipeLeaderDownTicks
		w.res.Crashes++
	}
	if err := victim.wipe(); err != nil {
		w.violate(KindInternal, err.Error())
	}
}
