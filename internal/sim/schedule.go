package sim

import "fmt"

// schedule is the seed's plan for the network and for crashes. Until
// calmAt the network drops, duplicates and delays messages, partitions
// form and heal and replicas crash and restart; from calmAt on every
// replica runs, the network is whole and delivers everything within
// MaxNetworkDelay ticks (Byzantine replicas keep misbehaving).
type schedule struct {
	calmAt    int64
	dropRate  float64
	dupRate   float64
	spikeRate float64
	maxDelay  int64

	partitions     bool
	group          []int
	partitionUntil int64
	nextPartition  int64

	crashes   bool
	maxDown   int
	nextCrash int64
	downUntil map[*host]int64

	// primaryCrash, when positive, is the tick at which replica 0 (the
	// first primary) crashes, so that replica 1, the next primary, leads
	// a view change early (see world.setup's attack scenario).
	primaryCrash int64
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
		maxDown:    max(1, w.f),
		group:      make([]int, w.n),
		downUntil:  map[*host]int64{},
	}
	s.nextPartition = r.Int64N(200)
	s.nextCrash = r.Int64N(300)
	return s
}

func (s *schedule) String() string {
	str := fmt.Sprintf("calm@%d drop=%.2f dup=%.2f spike=%.2f delay<=%d partitions=%v crashes=%v",
		s.calmAt, s.dropRate, s.dupRate, s.spikeRate, s.maxDelay, s.partitions, s.crashes)
	if s.primaryCrash > 0 {
		str += fmt.Sprintf(" crash-0>=%d", s.primaryCrash)
	}
	return str
}

// apply carries out what the schedule plans for this tick.
func (s *schedule) apply(w *world) {
	if w.now == s.calmAt {
		clear(s.group)
		for _, h := range w.hosts {
			h.tornArmedAt = 0
			if h.down {
				delete(s.downUntil, h)
				h.restart()
			}
		}
		return
	}
	if w.calm() {
		return
	}
	for _, h := range w.hosts {
		if h.down && w.now >= s.downUntil[h] {
			delete(s.downUntil, h)
			h.restart()
		}
		if h.tornArmedAt > 0 && w.now-h.tornArmedAt > tornArmedTicks {
			// No Ready sent anything early meanwhile: crash it plainly.
			h.crash()
			s.downUntil[h] = w.now + 10 + w.rng.Int64N(200)
			w.res.Crashes++
		}
	}
	if s.primaryCrash > 0 && w.now >= s.primaryCrash && s.primaryAhead(w) {
		s.primaryCrash = 0
		for _, h := range w.byID[0] {
			if !h.down {
				h.crash()
				s.downUntil[h] = w.now + 50 + w.rng.Int64N(300)
				w.res.Crashes++
			}
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
		s.partitionUntil = w.now + 20 + w.rng.Int64N(150)
		w.res.Partitions++
	}
}

func (s *schedule) crash(w *world) {
	if w.now < s.nextCrash {
		return
	}
	s.nextCrash = w.now + 50 + w.rng.Int64N(400)
	armed := 0
	for _, h := range w.hosts {
		if h.tornArmedAt > 0 {
			armed++
		}
	}
	if len(s.downUntil)+armed >= s.maxDown {
		return
	}
	// A third of the crashes are torn crashes of the primary: they hit a
	// correct primary between sending its next PRE-PREPAREs and persisting
	// them (host.drain).
	if w.rng.IntN(3) == 0 {
		for _, h := range w.hosts {
			if h.correct && !h.down && h.core.IsPrimary() && h.core.ViewActive() {
				h.tornArmedAt = w.now
				return
			}
		}
	}
	h := w.hosts[w.rng.IntN(len(w.hosts))]
	if h.down || h.tornArmedAt > 0 {
		return
	}
	h.crash()
	s.downUntil[h] = w.now + 10 + w.rng.Int64N(200)
	w.res.Crashes++
}

// tornArmedTicks is how long a replica armed for a torn crash waits for a
// Ready that sends before persisting; after that it crashes plainly.
const tornArmedTicks = 200

// tornCrash crashes h between its early sends and its persist (see
// host.drain).
func (s *schedule) tornCrash(w *world, h *host) {
	h.crash()
	s.downUntil[h] = w.now + 10 + w.rng.Int64N(200)
	w.res.Crashes++
	w.res.TornCrashes++
}

// primaryAhead reports whether replica 0 executed a sequence no other
// correct replica committed yet, the moment its crash hurts most (or,
// after 300 ticks of waiting for it, any moment).
func (s *schedule) primaryAhead(w *world) bool {
	if w.now >= s.primaryCrash+300 {
		return true
	}
	for _, h := range w.byID[0] {
		if h.down || !h.correct {
			return true
		}
		for _, o := range w.hosts {
			if o.id != 0 && o.correct && !o.down && o.core.Status().LastCommitted >= h.exec.LastExecuted() {
				return false
			}
		}
	}
	return true
}
