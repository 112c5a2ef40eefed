package simkit

import (
	"container/heap"
	"math/rand/v2"
)

// Event is a message in flight: its payload P is delivered at tick At.
type Event[P any] struct {
	// At is the tick the network delivers the event.
	At int64
	// ID numbers the events of a run in push order, from 1.
	ID uint64
	// order is the random key that orders the events of one tick.
	order   uint64
	Payload P
}

// Queue holds the events in flight. Events are delivered by tick; events
// of one tick in the order of a random key drawn when they are pushed (the
// network reorders), and events with equal keys in push order, so that a
// run depends on nothing but its seed.
type Queue[P any] struct {
	h      eventHeap[P]
	pushed uint64
}

// Push puts payload p on the queue for delivery at tick at. It draws the
// event's ordering key from rng (one Uint64) and returns the event.
func (q *Queue[P]) Push(rng *rand.Rand, at int64, p P) *Event[P] {
	q.pushed++
	e := &Event[P]{At: at, ID: q.pushed, order: rng.Uint64(), Payload: p}
	heap.Push(&q.h, e)
	return e
}

// Due reports whether an event is due at tick now.
func (q *Queue[P]) Due(now int64) bool { return len(q.h) > 0 && q.h[0].At <= now }

// Pop removes and returns the next event; the queue must not be empty.
func (q *Queue[P]) Pop() *Event[P] { return heap.Pop(&q.h).(*Event[P]) }

// Len is the number of events in flight.
func (q *Queue[P]) Len() int { return len(q.h) }

type eventHeap[P any] []*Event[P]

func (q eventHeap[P]) Len() int { return len(q) }
func (q eventHeap[P]) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.At != b.At {
		return a.At < b.At
	}
	if a.order != b.order {
		return a.order < b.order
	}
	return a.ID < b.ID
}
func (q eventHeap[P]) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventHeap[P]) Push(x any)   { *q = append(*q, x.(*Event[P])) }
func (q *eventHeap[P]) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}
