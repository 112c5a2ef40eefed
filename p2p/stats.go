package p2p

import "sync/atomic"

// Stats is a snapshot of the host's counters.
type Stats struct {
	FramesSent         uint64 // frames written and flushed to a stream
	FramesReceived     uint64 // frames read from streams (including ones later dropped)
	BytesSent          uint64 // frame body bytes sent (length prefixes excluded)
	BytesReceived      uint64 // frame body bytes received (length prefixes excluded)
	DroppedQueueFull   uint64 // outbound frames refused because the peer's queue was full (frames or bytes)
	DroppedNoRoute     uint64 // outbound frames refused: unknown member, self, wrong host kind, no client stream, or host closed
	DroppedInboundFull uint64 // client host: replies dropped because the Replies channel was full
	// DroppedInbound counts received frames dropped because their own
	// source's inbound queue was full, by the source's Class.
	DroppedInbound          [numClasses]uint64
	DroppedFaulty           uint64 // received frames dropped unverified: their source was backed off as faulty
	IncompleteFrameTimeouts uint64 // streams reset: a frame that had begun arriving missed its deadline
	RejectedPartial         uint64 // client streams reset: a frame beyond the bytes of incomplete frames allowed
	RejectedOversized       uint64 // frames over MaxFrameSize: outbound refused by Send, inbound streams closed
	RejectedPeers           uint64 // connections and streams refused: replica streams from non-members, and clients not on the allowlist
	RateLimited             uint64 // client frames dropped over the client's rate limit
	ClientBytesPaced        uint64 // times a client stream's reader waited for its key's byte budget
	ClientStreamsRefused    uint64 // ClientProtocol streams reset unread: their key opened streams over its limit (StreamLimits)
	BackedOffReplicas       int    // replicas backed off as faulty now (a gauge)
}

type counters struct {
	framesSent, framesReceived, bytesSent, bytesReceived atomic.Uint64
	droppedQueueFull, droppedNoRoute, droppedInboundFull atomic.Uint64
	droppedInbound                                       [numClasses]atomic.Uint64
	droppedFaulty                                        atomic.Uint64
	incompleteFrameTimeouts, rejectedPartial             atomic.Uint64
	rejectedOversized, rejectedPeers, rateLimited        atomic.Uint64
	clientBytesPaced                                     atomic.Uint64
	clientStreamsRefused                                 atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (h *Host) Stats() Stats {
	c := &h.stats
	st := Stats{
		FramesSent:              c.framesSent.Load(),
		FramesReceived:          c.framesReceived.Load(),
		BytesSent:               c.bytesSent.Load(),
		BytesReceived:           c.bytesReceived.Load(),
		DroppedQueueFull:        c.droppedQueueFull.Load(),
		DroppedNoRoute:          c.droppedNoRoute.Load(),
		DroppedInboundFull:      c.droppedInboundFull.Load(),
		DroppedFaulty:           c.droppedFaulty.Load(),
		IncompleteFrameTimeouts: c.incompleteFrameTimeouts.Load(),
		RejectedPartial:         c.rejectedPartial.Load(),
		RejectedOversized:       c.rejectedOversized.Load(),
		RejectedPeers:           c.rejectedPeers.Load(),
		RateLimited:             c.rateLimited.Load(),
		ClientBytesPaced:        c.clientBytesPaced.Load(),
		ClientStreamsRefused:    c.clientStreamsRefused.Load(),
	}
	if h.faulty != nil {
		st.BackedOffReplicas = len(h.faulty.backedOffReplicas())
	}
	for i := range st.DroppedInbound {
		st.DroppedInbound[i] = c.droppedInbound[i].Load()
	}
	return st
}
