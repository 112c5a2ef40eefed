package p2p

import (
	"container/list"

	"github.com/libp2p/go-libp2p/core/peer"
)

// lruMap is a bounded map from peer IDs to values that forgets the least
// recently touched entry first. It is not safe for concurrent use.
type lruMap[V any] struct {
	capacity int
	order    *list.List // of *lruEntry[V]; front: most recent
	elems    map[peer.ID]*list.Element
}

type lruEntry[V any] struct {
	id    peer.ID
	value V
}

func newLRUMap[V any](capacity int) *lruMap[V] {
	return &lruMap[V]{capacity: capacity, order: list.New(), elems: make(map[peer.ID]*list.Element)}
}

// get returns id's value, making it the most recent.
func (l *lruMap[V]) get(id peer.ID) (V, bool) {
	e, ok := l.elems[id]
	if !ok {
		var zero V
		return zero, false
	}
	l.order.MoveToFront(e)
	return e.Value.(*lruEntry[V]).value, true
}

// has reports whether id is present, without making it the most recent.
func (l *lruMap[V]) has(id peer.ID) bool {
	_, ok := l.elems[id]
	return ok
}

// put sets id's value as the most recent, evicting the least recent
// beyond capacity.
func (l *lruMap[V]) put(id peer.ID, value V) {
	if e, ok := l.elems[id]; ok {
		e.Value.(*lruEntry[V]).value = value
		l.order.MoveToFront(e)
		return
	}
	l.elems[id] = l.order.PushFront(&lruEntry[V]{id: id, value: value})
	for l.order.Len() > l.capacity {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.elems, last.Value.(*lruEntry[V]).id)
	}
}

// len is how many entries are present.
func (l *lruMap[V]) len() int { return len(l.elems) }

// lruSet is a bounded set of peer IDs that forgets the least recently
// touched first.
type lruSet struct{ m *lruMap[struct{}] }

func newLRUSet(capacity int) *lruSet { return &lruSet{m: newLRUMap[struct{}](capacity)} }

// touch reports whether id is in the set, making it the most recent.
func (l *lruSet) touch(id peer.ID) bool {
	_, ok := l.m.get(id)
	return ok
}

// has reports whether id is in the set, without making it the most recent.
func (l *lruSet) has(id peer.ID) bool { return l.m.has(id) }

// add puts id in the set as the most recent, evicting the least recent
// beyond capacity.
func (l *lruSet) add(id peer.ID) { l.m.put(id, struct{}{}) }
