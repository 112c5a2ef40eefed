package p2p

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Class is the kind of source an inbound frame came from, as used in
// drop counters: a replica, an established client key, or a key not yet
// established (all of which share one newcomer budget).
type Class int

// Source classes.
const (
	ClassReplica Class = iota
	ClassClient
	ClassNewcomer
	numClasses
)

// String returns the class's metric label.
func (c Class) String() string {
	switch c {
	case ClassReplica:
		return "replica"
	case ClassClient:
		return "client"
	case ClassNewcomer:
		return "newcomer"
	}
	return "unknown"
}

// Inbound scheduling defaults (see InboundLimits).
const (
	DefaultReplicaQueueFrames  = 8192
	DefaultReplicaQueueBytes   = 64 << 20
	DefaultClientQueueFrames   = 256
	DefaultClientQueueBytes    = 8 << 20
	DefaultNewcomerQueueFrames = 4096
	DefaultNewcomerQueueBytes  = 16 << 20
	DefaultClientTotalBytes    = 128 << 20
	DefaultEstablishedClients  = 4096
	DefaultQuantum             = 64 << 10
	DefaultFrameCost           = 1 << 10
	DefaultReplicaWeight       = 4
)

// InboundLimits bound and weigh the host's inbound queues. Zero fields
// take the defaults above.
type InboundLimits struct {
	ReplicaQueueFrames, ReplicaQueueBytes   int // per replica member
	ClientQueueFrames, ClientQueueBytes     int // per established client key
	NewcomerQueueFrames, NewcomerQueueBytes int // all keys not yet established, together
	// ClientTotalBytes bounds the bytes queued by all established client
	// keys together: a memory ceiling that takes many keys to reach.
	ClientTotalBytes int
	// EstablishedClients bounds how many established keys are remembered
	// (least recently used first out).
	EstablishedClients int
	// Quantum is the bytes a source may take per deficit-round-robin turn;
	// FrameCost is added to each frame's length when charging it, so tiny
	// frames (whose cost is their signature check) are not free.
	Quantum, FrameCost int
	// ReplicaWeight is the replica class's share of service against the
	// client class's 1, when both have frames waiting.
	ReplicaWeight int
}

func (l InboundLimits) withDefaults() InboundLimits {
	l.ReplicaQueueFrames = orDefault(l.ReplicaQueueFrames, DefaultReplicaQueueFrames)
	l.ReplicaQueueBytes = orDefault(l.ReplicaQueueBytes, DefaultReplicaQueueBytes)
	l.ClientQueueFrames = orDefault(l.ClientQueueFrames, DefaultClientQueueFrames)
	l.ClientQueueBytes = orDefault(l.ClientQueueBytes, DefaultClientQueueBytes)
	l.NewcomerQueueFrames = orDefault(l.NewcomerQueueFrames, DefaultNewcomerQueueFrames)
	l.NewcomerQueueBytes = orDefault(l.NewcomerQueueBytes, DefaultNewcomerQueueBytes)
	l.ClientTotalBytes = orDefault(l.ClientTotalBytes, DefaultClientTotalBytes)
	l.EstablishedClients = orDefault(l.EstablishedClients, DefaultEstablishedClients)
	l.Quantum = orDefault(l.Quantum, DefaultQuantum)
	l.FrameCost = orDefault(l.FrameCost, DefaultFrameCost)
	l.ReplicaWeight = orDefault(l.ReplicaWeight, DefaultReplicaWeight)
	return l
}

// source is one sender's bounded FIFO of frames waiting for verification.
type source struct {
	class     Class
	client    peer.ID // ClassClient: the key; else empty
	frames    []Frame
	head      int // frames[head:] are queued
	bytes     int
	maxFrames int
	maxBytes  int
	deficit   int
	active    bool // in its class's round-robin ring
}

func (s *source) queued() int { return len(s.frames) - s.head }

func (s *source) pop() Frame {
	f := s.frames[s.head]
	s.frames[s.head] = Frame{}
	s.head++
	s.bytes -= len(f.Data)
	if s.head == len(s.frames) {
		s.frames, s.head = s.frames[:0], 0
	} else if s.head > 64 && s.head*2 > len(s.frames) {
		n := copy(s.frames, s.frames[s.head:])
		clear(s.frames[n:])
		s.frames, s.head = s.frames[:n], 0
	}
	return f
}

// ring is one class's deficit round robin over its active sources.
type ring struct {
	active  []*source
	vtime   uint64 // start-time fair queuing between the two rings
	weight  uint64
	quantum int
}

// take serves the head frame of the first source whose deficit covers it,
// topping up and rotating the others: deficit round robin by bytes plus
// a per-frame cost. The ring must not be empty.
func (r *ring) take(frameCost int) (Frame, *source, int) {
	for {
		s := r.active[0]
		cost := len(s.frames[s.head].Data) + frameCost
		if s.deficit >= cost {
			s.deficit -= cost
			f := s.pop()
			if s.queued() == 0 {
				s.deficit, s.active = 0, false
				r.active[0] = nil
				r.active = r.active[1:]
			}
			return f, s, cost
		}
		s.deficit += r.quantum
		r.active[0] = nil
		r.active = append(r.active[1:], s)
	}
}

// scheduler holds every source's inbound queue and hands frames to the
// verification workers fairly: start-time fair queuing between the
// replica and the client class (weighted ReplicaWeight to 1), deficit
// round robin by bytes among the sources of a class. A source that
// overflows its bounds loses only its own frames.
type scheduler struct {
	limits InboundLimits
	stats  *counters
	notify chan struct{} // one token: frames may be waiting

	mu          sync.Mutex
	replicas    map[int]*source
	clients     map[peer.ID]*source // established keys with frames queued
	newcomers   *source
	clientBytes int // queued by established keys
	rings       [2]ring
	queued      int
	established *lruSet
	faulty      *faultBook
}

func newScheduler(limits InboundLimits, stats *counters, faulty *faultBook) *scheduler {
	l := limits.withDefaults()
	s := &scheduler{
		limits:      l,
		stats:       stats,
		notify:      make(chan struct{}, 1),
		replicas:    make(map[int]*source),
		clients:     make(map[peer.ID]*source),
		newcomers:   &source{class: ClassNewcomer, maxFrames: l.NewcomerQueueFrames, maxBytes: l.NewcomerQueueBytes},
		established: newLRUSet(l.EstablishedClients),
		faulty:      faulty,
	}
	s.rings[0] = ring{weight: uint64(l.ReplicaWeight), quantum: l.Quantum}
	s.rings[1] = ring{weight: 1, quantum: l.Quantum}
	return s
}

// push queues f from its source (a replica when f.FromIndex >= 0, else
// the client key f.From) and reports whether it was queued. A frame is
// refused, and counted against its own class, when its source is backed
// off as faulty or its queue is full in frames or bytes.
func (s *scheduler) push(f Frame) bool {
	s.mu.Lock()
	src, class := s.sourceOf(f)
	ok := false
	switch {
	case s.faulty.backedOff(f):
		s.stats.droppedFaulty.Add(1)
	case src.queued() >= src.maxFrames || src.bytes+len(f.Data) > src.maxBytes:
		s.stats.droppedInbound[class].Add(1)
	case class == ClassClient && s.clientBytes+len(f.Data) > s.limits.ClientTotalBytes:
		s.stats.droppedInbound[class].Add(1)
	default:
		ok = true
		src.frames = append(src.frames, f)
		src.bytes += len(f.Data)
		if class == ClassClient {
			s.clientBytes += len(f.Data)
		}
		s.queued++
		if !src.active {
			if class == ClassClient {
				s.clients[f.From] = src // a new source: lookup found none queued
			}
			s.activate(src)
		}
	}
	s.mu.Unlock()
	if ok {
		s.signal()
	}
	return ok
}

// sourceOf returns f's source, creating an established client's. The
// caller holds s.mu.
func (s *scheduler) sourceOf(f Frame) (*source, Class) {
	if f.FromIndex >= 0 {
		src, ok := s.replicas[f.FromIndex]
		if !ok {
			src = &source{class: ClassReplica, maxFrames: s.limits.ReplicaQueueFrames, maxBytes: s.limits.ReplicaQueueBytes}
			s.replicas[f.FromIndex] = src
		}
		return src, ClassReplica
	}
	if src, ok := s.clients[f.From]; ok {
		s.established.touch(f.From)
		return src, ClassClient
	}
	if s.established.touch(f.From) {
		return &source{class: ClassClient, client: f.From, maxFrames: s.limits.ClientQueueFrames, maxBytes: s.limits.ClientQueueBytes}, ClassClient
	}
	return s.newcomers, ClassNewcomer
}

// isEstablished reports whether client is an established key, without
// making it the most recent.
func (s *scheduler) isEstablished(client peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.established.has(client)
}

// activate puts src in its class's ring with one quantum of credit. A ring
// that was idle starts at the other's virtual time, so idleness banks no
// credit.
func (s *scheduler) activate(src *source) {
	r := &s.rings[ringOf(src.class)]
	if len(r.active) == 0 {
		other := &s.rings[1-ringOf(src.class)]
		if len(other.active) > 0 {
			r.vtime = max(r.vtime, other.vtime)
		}
	}
	src.active, src.deficit = true, r.quantum
	r.active = append(r.active, src)
}

func ringOf(c Class) int {
	if c == ClassReplica {
		return 0
	}
	return 1
}

// take appends up to limit frames to into, in scheduling order, dropping
// (counted) those whose source was backed off since they were queued (in
// the shared newcomer queue, say). The caller holds s.mu.
func (s *scheduler) take(into []Frame, limit int) []Frame {
	for n := 0; n < limit && s.queued > 0; {
		r := &s.rings[0]
		if other := &s.rings[1]; len(r.active) == 0 || (len(other.active) > 0 && other.vtime < r.vtime) {
			r = other
		}
		f, src, cost := r.take(s.limits.FrameCost)
		r.vtime += uint64(cost) * uint64(s.limits.ReplicaWeight) / r.weight
		s.queued--
		if src.class == ClassClient {
			s.clientBytes -= len(f.Data)
			if src.queued() == 0 {
				delete(s.clients, src.client)
			}
		}
		if s.faulty.backedOff(f) {
			s.stats.droppedFaulty.Add(1)
			continue
		}
		into = append(into, f)
		n++
	}
	return into
}

// dropQueued discards the queued frames of a source just backed off, counting
// them as dropped faulty. The caller holds s.mu.
func (s *scheduler) dropQueued(f Frame) {
	var src *source
	if f.FromIndex >= 0 {
		src = s.replicas[f.FromIndex]
	} else {
		src = s.clients[f.From]
	}
	if src == nil || src.queued() == 0 {
		return
	}
	n := src.queued()
	for src.queued() > 0 {
		g := src.pop()
		if src.class == ClassClient {
			s.clientBytes -= len(g.Data)
		}
	}
	delete(s.clients, src.client)
	s.queued -= n
	s.stats.droppedFaulty.Add(uint64(n))
	r := &s.rings[ringOf(src.class)]
	for i, a := range r.active {
		if a == src {
			r.active = append(r.active[:i], r.active[i+1:]...)
			break
		}
	}
	src.active, src.deficit = false, 0
}

func (s *scheduler) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// next waits for at least one queued frame, then appends up to limit
// frames to into. It returns ok = false, with what it took, once ctx or
// done ends and nothing is queued.
func (s *scheduler) next(ctx context.Context, done <-chan struct{}, into []Frame, limit int) ([]Frame, bool) {
	for {
		s.mu.Lock()
		into = s.take(into, limit)
		more := s.queued > 0
		s.mu.Unlock()
		if more {
			s.signal() // wake another worker
		}
		if len(into) > 0 {
			return into, true
		}
		select {
		case <-ctx.Done():
			return into, false
		case <-done:
			return into, false
		case <-s.notify:
		}
	}
}
