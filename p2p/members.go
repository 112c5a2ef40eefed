package p2p

import (
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// memberSet is one version of a host's member set: the members by index
// and by peer ID, and the outbound link to each other member. A set is
// never modified once published (Host.members); SetMembers publishes a new
// one.
type memberSet struct {
	byIndex   map[uint32]Member
	byID      map[peer.ID]uint32
	links     map[uint32]*outLink // replica host: ReplicaProtocol links; client host: ClientProtocol links
	linkOrder []uint32            // link indexes in ascending order
}

// newMemberSet checks members (valid peer IDs, no index or ID twice) and
// returns their set, without links.
func newMemberSet(members []Member) (*memberSet, error) {
	set := &memberSet{
		byIndex: make(map[uint32]Member, len(members)),
		byID:    make(map[peer.ID]uint32, len(members)),
		links:   make(map[uint32]*outLink, len(members)),
	}
	for _, m := range members {
		if err := m.ID.Validate(); err != nil {
			return nil, fmt.Errorf("member %d: %w", m.Index, err)
		}
		if _, dup := set.byIndex[m.Index]; dup {
			return nil, fmt.Errorf("duplicate member index %d", m.Index)
		}
		if _, dup := set.byID[m.ID]; dup {
			return nil, fmt.Errorf("member %d: duplicate peer ID %s", m.Index, m.ID)
		}
		set.byIndex[m.Index] = m
		set.byID[m.ID] = m.Index
	}
	return set, nil
}

// isMember reports whether p is in the current member set.
func (h *Host) isMember(p peer.ID) bool {
	_, ok := h.members.Load().byID[p]
	return ok
}

// addLink records a new link to m in set (not yet published or started):
// m is protected from connection trimming and its address, if given, goes
// to the peerstore.
func (h *Host) addLink(set *memberSet, m Member) error {
	h.host.ConnManager().Protect(m.ID, memberTag)
	if m.Addr != nil {
		if err := h.addrOf(m); err != nil {
			return err
		}
	}
	proto := h.replicaProto
	if h.clientHost {
		proto = ClientProtocol
	}
	set.links[m.Index] = newOutLink(h, m, proto)
	set.linkOrder = append(set.linkOrder, m.Index)
	return nil
}

// SetMembers replaces the host's member set with members (a replica
// host's must include itself, under its own key): links to new members
// (a new index, or an index under a new key) start; removed members lose
// their link at once (frames for them are dropped as unroutable), their
// connections are closed, and the gater and the replica stream handler
// refuse them from then on; a kept member whose address changed is redialed
// there. Frames queued for a kept member stay queued.
//
// A removed member's link goroutine is no longer reachable: it finds every
// dial refused by the gater and waits out its backoff until the host
// closes, sending nothing.
func (h *Host) SetMembers(members []Member) error {
	next, err := newMemberSet(members)
	if err != nil {
		return fmt.Errorf("p2p: set members: %w", err)
	}
	if !h.clientHost {
		self, ok := next.byIndex[uint32(h.self)]
		if !ok || self.ID != h.host.ID() {
			return fmt.Errorf("p2p: set members: this replica (index %d, %s) is not among them", h.self, h.host.ID())
		}
	} else if _, ok := next.byID[h.host.ID()]; ok {
		return errors.New("p2p: set members: a client host must not use a member's key")
	}
	h.membersMu.Lock()
	defer h.membersMu.Unlock()
	prev := h.members.Load()
	var started []*outLink
	for _, m := range next.byIndex {
		if int64(m.Index) == int64(h.self) {
			continue
		}
		if old, ok := prev.links[m.Index]; ok && old.member.ID == m.ID {
			next.links[m.Index] = old
			next.linkOrder = append(next.linkOrder, m.Index)
			if m.Addr != nil && (old.member.Addr == nil || !m.Addr.Equal(old.member.Addr)) {
				if err := h.addrOf(m); err != nil {
					return err
				}
				old.wakeUp()
			}
			continue
		}
		if err := h.addLink(next, m); err != nil {
			return err
		}
		started = append(started, next.links[m.Index])
	}
	slices.Sort(next.linkOrder)
	h.members.Store(next)
	for id := range prev.byID {
		if _, kept := next.byID[id]; !kept && id != h.host.ID() {
			h.host.ConnManager().Unprotect(id, memberTag)
			_ = h.host.Network().ClosePeer(id)
		}
	}
	for _, l := range started {
		if !h.enter() {
			return errors.New("p2p: set members: host closed")
		}
		go l.run()
	}
	h.logger.Info("p2p: member set changed", "members", len(next.byIndex), "links_started", len(started))
	return nil
}

// addrOf records a kept member's new address.
func (h *Host) addrOf(m Member) error {
	transport, id := peer.SplitAddr(m.Addr)
	if transport == nil {
		return fmt.Errorf("p2p: set member address: member %d: empty address %q", m.Index, m.Addr)
	}
	if id != "" && id != m.ID {
		return fmt.Errorf("p2p: set member address: member %d: address names peer %s, member is %s", m.Index, id, m.ID)
	}
	h.host.Peerstore().ClearAddrs(m.ID)
	h.host.Peerstore().AddAddr(m.ID, transport, peerstore.PermanentAddrTTL)
	return nil
}
