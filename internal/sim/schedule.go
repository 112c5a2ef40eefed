package sim

import (
	"fmt"

	"github.com/pbftnode/pbftnode/internal/simkit"
)

// schedule is the seed's plan for the network and for crashes
// (simkit.Faults): until CalmAt the network drops, duplicates and delays
// messages, partitions form and heal and replicas crash and restart (a
// third of the crashes torn crashes of the primary); from CalmAt on every
// replica runs, the network is whole and delivers everything within
// simkit.MaxNetworkDelay ticks (Byzantine replicas keep misbehaving).
type schedule struct {
	*simkit.Faults[*host]

	// primaryCrash, when positive, is the tick at which replica 0 (the
	// first primary) crashes, so that replica 1, the next primary, leads
	// a view change early (see world.setup's attack scenario).
	primaryCrash int64
}

func newSchedule(w *world) *schedule {
	s := &schedule{Faults: simkit.DrawFaults[*host](w.rng, w.total, max(1, w.f))}
	s.Arm(w.rng)
	return s
}

func (s *schedule) String() string {
	str := s.Faults.String()
	if s.primaryCrash > 0 {
		str += fmt.Sprintf(" crash-0>=%d", s.primaryCrash)
	}
	return str
}

// apply carries out what the schedule plans for this tick.
func (s *schedule) apply(w *world) {
	if w.now == s.CalmAt {
		s.Heal()
		for _, h := range w.hosts {
			h.tornArmedAt = 0
			if h.down {
				delete(s.DownUntil, h)
				h.restart()
			}
		}
		return
	}
	if w.calm() {
		return
	}
	for _, h := range w.hosts {
		if h.down && s.RestartDue(h, w.now) {
			h.restart()
		}
		if h.tornArmedAt > 0 && w.now-h.tornArmedAt > tornArmedTicks {
			// No Ready sent anything early meanwhile: crash it plainly.
			s.crashHost(w, h, 200)
		}
	}
	if s.primaryCrash > 0 && w.now >= s.primaryCrash && s.primaryAhead(w) {
		s.primaryCrash = 0
		for _, h := range w.byID[0] {
			if !h.down {
				h.crash()
				s.Down(w.rng, h, w.now, 50, 300)
				w.res.Crashes++
			}
		}
	}
	if s.Partition(w.rng, w.now) {
		w.res.Partitions++
	}
	s.crash(w)
}

// crashHost crashes h for 10 ticks plus a draw below spread.
func (s *schedule) crashHost(w *world, h *host, spread int64) {
	h.crash()
	s.Down(w.rng, h, w.now, 10, spread)
	w.res.Crashes++
}

func (s *schedule) crash(w *world) {
	armed := 0
	for _, h := range w.hosts {
		if h.tornArmedAt > 0 {
			armed++
		}
	}
	if !s.CrashDue(w.rng, w.now, armed) {
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
	s.crashHost(w, h, 200)
}

// tornArmedTicks is how long a replica armed for a torn crash waits for a
// Ready that sends before persisting; after that it crashes plainly.
const tornArmedTicks = 200

// tornCrash crashes h between its early sends and its persist (see
// host.drain).
func (s *schedule) tornCrash(w *world, h *host) {
	s.crashHost(w, h, 200)
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
