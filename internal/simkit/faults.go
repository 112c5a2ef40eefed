package simkit

import (
	"fmt"
	"math/rand/v2"
)

// MaxNetworkDelay bounds a message's delay once the network is calm.
const MaxNetworkDelay = 3

// Faults is the part of a seed's plan that both simulators share: a
// faulty network until CalmAt (drops, duplicates, delays and delay
// spikes), partitions that form and heal, and the timing of random
// crashes, with at most MaxDown processes of type H down at once. From
// CalmAt on the network is whole and delivers everything within
// MaxNetworkDelay ticks.
//
// Every method that draws from the seed's generator draws in a fixed
// order, so a seed replays exactly.
type Faults[H comparable] struct {
	CalmAt    int64
	DropRate  float64
	DupRate   float64
	SpikeRate float64
	MaxDelay  int64

	// Partitions is whether partitions form before calm. Group splits
	// the replicas in two (all 0: whole). With Asymmetric, each partition
	// draws OneWay: group 1 still hears group 0.
	Partitions     bool
	Group          []int
	Asymmetric     bool
	OneWay         bool
	PartitionUntil int64
	NextPartition  int64

	// Crashes is whether processes crash before calm; NextCrash is the
	// next tick one may, and DownUntil when each crashed process restarts.
	Crashes   bool
	MaxDown   int
	NextCrash int64
	DownUntil map[H]int64
}

// DrawFaults draws a random plan for n replicas from r: the calm tick,
// the network's fault rates, and whether partitions and crashes happen.
// The caller may draw its own additions next and must then call Arm,
// which draws the first partition and crash ticks.
func DrawFaults[H comparable](r *rand.Rand, n, maxDown int) *Faults[H] {
	return &Faults[H]{
		CalmAt:     300 + r.Int64N(700),
		DropRate:   r.Float64() * 0.2,
		DupRate:    r.Float64() * 0.05,
		SpikeRate:  r.Float64() * 0.1,
		MaxDelay:   1 + r.Int64N(8),
		Partitions: r.IntN(10) < 6,
		Crashes:    r.IntN(10) < 6,
		MaxDown:    maxDown,
		Group:      make([]int, n),
		DownUntil:  map[H]int64{},
	}
}

// Arm draws the ticks of the first partition and the first crash.
func (f *Faults[H]) Arm(r *rand.Rand) {
	f.NextPartition = r.Int64N(200)
	f.NextCrash = r.Int64N(300)
}

// CalmFaults is a plan that is calm from tick 0 for n replicas: no
// faults, every message delivered in one tick.
func CalmFaults[H comparable](n int) *Faults[H] {
	return &Faults[H]{MaxDelay: 1, Group: make([]int, n), DownUntil: map[H]int64{}}
}

func (f *Faults[H]) String() string {
	return fmt.Sprintf("calm@%d drop=%.2f dup=%.2f spike=%.2f delay<=%d partitions=%v crashes=%v",
		f.CalmAt, f.DropRate, f.DupRate, f.SpikeRate, f.MaxDelay, f.Partitions, f.Crashes)
}

// Calm reports whether the plan is calm at tick now.
func (f *Faults[H]) Calm(now int64) bool { return now >= f.CalmAt }

// Delay draws how many ticks a message sent at tick now takes, whether
// it is lost, and how many copies arrive (2 when the network duplicates
// it).
func (f *Faults[H]) Delay(r *rand.Rand, now int64) (ticks int64, dropped bool, copies int) {
	if f.Calm(now) {
		return 1 + r.Int64N(MaxNetworkDelay), false, 1
	}
	if r.Float64() < f.DropRate {
		return 0, true, 0
	}
	ticks = 1 + r.Int64N(f.MaxDelay)
	if r.Float64() < f.SpikeRate {
		ticks += r.Int64N(40)
	}
	copies = 1
	if r.Float64() < f.DupRate {
		copies = 2
	}
	return ticks, false, copies
}

// Transmit draws the fate of one message sent at tick now (Delay) and
// calls arrive with the delivery tick of each copy that arrives (a
// duplicate arrives up to 19 ticks after the first copy). It reports
// false when the message is lost. Draws: Delay's, then one Int64N(20)
// per copy, each before its arrive call (which may draw too).
func (f *Faults[H]) Transmit(r *rand.Rand, now int64, arrive func(at int64)) bool {
	d, dropped, copies := f.Delay(r, now)
	if dropped {
		return false
	}
	for c := range copies {
		arrive(now + d + int64(c)*r.Int64N(20))
	}
	return true
}

// Linked reports whether replica a's messages reach replica b at tick
// now: always once calm, otherwise within a partition's group or, for a
// one-way partition, from group 0.
func (f *Faults[H]) Linked(now int64, a, b uint32) bool {
	return f.Calm(now) || f.Group[a] == f.Group[b] || (f.OneWay && f.Group[a] == 0)
}

// Heal ends any partition (at calm).
func (f *Faults[H]) Heal() { clear(f.Group) }

// Partition forms or heals a partition when one is due at tick now (with
// Partitions set) and reports whether one formed.
func (f *Faults[H]) Partition(r *rand.Rand, now int64) (formed bool) {
	if !f.Partitions {
		return false
	}
	switch {
	case f.PartitionUntil > 0 && now >= f.PartitionUntil:
		f.Heal()
		f.PartitionUntil = 0
		f.NextPartition = now + r.Int64N(300)
	case f.PartitionUntil == 0 && now >= f.NextPartition:
		for i := range f.Group {
			f.Group[i] = r.IntN(2)
		}
		if f.Asymmetric {
			f.OneWay = r.IntN(4) == 0
		}
		f.PartitionUntil = now + 20 + r.Int64N(150)
		return true
	}
	return false
}

// CrashDue reports whether a crash may happen at tick now (with Crashes
// set): when one is due, it draws the next crash tick, and reports true
// while fewer than MaxDown processes are down or otherwise busy (busy
// counts the caller's processes that are about to go down).
func (f *Faults[H]) CrashDue(r *rand.Rand, now int64, busy int) bool {
	if !f.Crashes || now < f.NextCrash {
		return false
	}
	f.NextCrash = now + 50 + r.Int64N(400)
	return len(f.DownUntil)+busy < f.MaxDown
}

// Down notes that h crashed at tick now and restarts at now+minTicks plus
// a draw below spread.
func (f *Faults[H]) Down(r *rand.Rand, h H, now, minTicks, spread int64) {
	f.DownUntil[h] = now + minTicks + r.Int64N(spread)
}

// RestartDue reports whether h is down with a restart due at tick now,
// and forgets its restart tick if so.
func (f *Faults[H]) RestartDue(h H, now int64) bool {
	if until, ok := f.DownUntil[h]; !ok || now < until {
		return false
	}
	delete(f.DownUntil, h)
	return true
}
