package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/storage"
	"github.com/pbftnode/pbftnode/wire"
)

// Reconfiguration (Config.Reconfigure): the cluster starts with the
// genesis replicas and Spares more hosts that are not members; an
// administrator client sends configuration changes among the workload
// (add a spare, remove a member, preferring a Byzantine one, rotate a
// correct member's key, add another spare). In a third of the runs with
// one Byzantine replica, that replica is the first spare: a joiner that
// lies once it is a member. Every host runs the driver
// with configuration epochs (replica.Epochs): its core's IDs are
// positions in its epoch's configuration, translated here to hosts by
// member index. A rotated member restarts with its new key as a fresh
// joiner (new storage, a history fetched from a correct member). The
// checkers are the same: agreement by sequence across epochs, exactly
// once, linearizability; at the end correct hosts must hold the same
// configuration for every epoch they know.

// Spares is how many non-member hosts a reconfiguration run starts with.
const Spares = 2

// adminTimeoutTicks: the administrator resends its pending change this
// often.
const adminTimeoutTicks = 60

// KindMembership: correct members disagree on the epoch or configuration
// at the end of a run.
const KindMembership = "membership"

func adminKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("pbftnode/sim/admin"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func rotatedKey(i uint32) ed25519.PrivateKey {
	seed := sha256.Sum256(binary.BigEndian.AppendUint32([]byte("pbftnode/sim/rotated"), i))
	return ed25519.NewKeyFromSeed(seed[:])
}

// adminClient sends the run's configuration changes one at a time.
type adminClient struct {
	w       *world
	signer  *crypto.Signer
	key     ed25519.PrivateKey
	changes []membership.Change
	// next is the index of the pending change; number its request number;
	// epoch the epoch the administrator believes current.
	next, number int
	epoch        uint64
	startAt      int64
	sentAt       int64
	frame        []byte
	results      map[uint32]string
	// rotate is the member whose key the pending change rotates.
	done []string
	plan string
	// retries counts the pending change's refusals for coming too early.
	retries int
}

// adminRetries bounds how often a change refused for coming before the
// previous one took effect is sent again.
const adminRetries = 20

// setupReconfigure builds the genesis, the spares and the administrator's
// plan; byz are the Byzantine hosts: genesis members, or the first spare
// (a joiner that lies once it is a member).
func (w *world) setupReconfigure(byz []int) {
	r := w.rng
	admin := adminKey()
	w.genesis = membership.Config{Admins: []ed25519.PublicKey{admin.Public().(ed25519.PublicKey)}, AdminThreshold: 1}
	for i := range w.n {
		w.genesis.Members = append(w.genesis.Members, memberRecord(uint32(i), w.keys[i]))
	}
	a := &adminClient{w: w, signer: crypto.NewSigner(admin, clusterID), key: admin, startAt: 30 + r.Int64N(200), results: map[uint32]string{}}
	remove := uint32(r.IntN(w.n))
	switch {
	case len(byz) > 0 && byz[0] >= w.n && r.IntN(2) == 0:
		// A Byzantine joiner stays a member; a correct genesis member
		// leaves instead.
	case len(byz) > 0:
		remove = uint32(byz[0])
	}
	rotate := uint32(r.IntN(w.n))
	for rotate == remove || containsInt(byz, int(rotate)) {
		rotate = uint32(r.IntN(w.n))
	}
	n := uint32(w.n)
	a.changes = []membership.Change{
		{Kind: membership.AddReplica, Member: memberRecord(n, w.keys[n])},
		{Kind: membership.RemoveReplica, Member: membership.Member{Index: remove}},
		{Kind: membership.RotateKey, Member: membership.Member{Index: rotate, PublicKey: rotatedKey(rotate).Public().(ed25519.PublicKey)}},
		{Kind: membership.AddReplica, Member: memberRecord(n+1, w.keys[n+1])},
	}
	if r.IntN(2) == 0 { // half the runs: only the first two
		a.changes = a.changes[:2]
	}
	w.admin = a
	var plan []string
	for _, ch := range a.changes {
		plan = append(plan, fmt.Sprintf("%s:%d", ch.Kind, ch.Member.Index))
	}
	a.plan = fmt.Sprintf(" reconfigure=[%s] from=%d", strings.Join(plan, " "), a.startAt)
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func memberRecord(i uint32, key ed25519.PrivateKey) membership.Member {
	return membership.Member{Index: i, PublicKey: key.Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/10.0.0.%d/tcp/7000", i+1)}
}

// verifierFor returns a verifier for an epoch's configuration.
func (w *world) verifierFor(cfg membership.Config) *protocol.MessageVerifier {
	pubs := make([]ed25519.PublicKey, len(cfg.Members))
	for i, m := range cfg.Members {
		pubs[i] = m.PublicKey
	}
	v := protocol.NewMessageVerifier(clusterID, pubs, nil, nil, 0).WithEpoch(cfg.Epoch)
	v.SetWindowSize(WindowSize)
	return v
}

// epochsFor returns host h's epoch configuration and its executor option.
func (h *host) epochsFor() (*replica.Epochs, execution.ExecutorOption) {
	w := h.w
	rules := execution.MembershipRules{ClusterID: clusterID, Genesis: w.genesis, Rules: membership.Rules{MinMembers: 4},
		ActiveFrom: replica.ActiveFrom(CheckpointInterval)}
	ep := &replica.Epochs{
		ClusterID: clusterID, Genesis: w.genesis, Rules: rules.Rules, Self: h.id,
		PublicKey: h.key.Public().(ed25519.PublicKey), History: h.history,
		NewVerifier: w.verifierFor, Storage: h.store, Network: hostEpochNetwork{h},
		OnEpoch: func(st replica.EpochStatus) {
			h.verifier = w.verifierFor(st.Config)
			if h.driver != nil {
				h.core = h.driver.Core()
			}
		},
	}
	return ep, execution.WithMembership(rules)
}

// hostEpochNetwork carries configuration votes and certificates between
// hosts by member index, over the faulty network.
type hostEpochNetwork struct{ h *host }

func (n hostEpochNetwork) SendConfigVote(to uint32, vote *wire.Signed) {
	n.h.w.sendConfig(n.h, to, event{kind: evConfigVote, vote: vote})
}

func (n hostEpochNetwork) SendConfigCertificate(to uint32, cert *wire.ConfigCertificate) {
	n.h.w.sendConfig(n.h, to, event{kind: evConfigCert, cert: cert})
}

func (n hostEpochNetwork) RequestConfig(to uint32, epoch uint64) {
	n.h.w.sendConfig(n.h, to, event{kind: evConfigReq, configEpoch: epoch})
}

func (w *world) sendConfig(from *host, to uint32, e event) {
	if int(to) >= len(w.byID) || w.stop {
		return
	}
	e.from = from.id
	for _, dst := range w.byID[to] {
		if !w.connected(from, dst) {
			w.res.Dropped++
			continue
		}
		e.to, e.epoch = dst, dst.epoch
		w.transmit(0, e)
	}
}

// deliverConfig hands a configuration vote or certificate to its host.
func (w *world) deliverConfig(e *event) {
	h := e.to
	switch e.kind {
	case evConfigVote:
		_ = h.driver.StepConfigVote(e.vote)
	case evConfigCert:
		_ = h.driver.StepConfigCertificate(e.cert)
	case evConfigReq:
		h.driver.OldEpochMessage(e.from, e.configEpoch)
	}
	h.process()
}

// destinations returns the hosts' member indices a message of host from
// to core position to (or protocol.Broadcast) goes to.
func (w *world) destinations(from *host, to uint32) []uint32 {
	if w.admin == nil {
		if to != protocol.Broadcast {
			return []uint32{to}
		}
		out := make([]uint32, 0, w.n-1)
		for i := range uint32(w.n) {
			if i != from.id {
				out = append(out, i)
			}
		}
		return out
	}
	st, _ := from.driver.EpochStatus()
	var out []uint32
	for pos, m := range st.Config.Members {
		if m.Index != from.id && (to == protocol.Broadcast || to == uint32(pos)) {
			out = append(out, m.Index)
		}
	}
	return out
}

// memberOf maps a core position of host h's epoch to a member index.
func (h *host) memberOf(pos uint32) uint32 {
	if h.w.admin == nil || h.driver == nil {
		return pos
	}
	if m, ok := h.driver.MemberAt(pos); ok {
		return m
	}
	return pos
}

// noteOldEpoch answers a frame of an older epoch with the certificates its
// sender lacks.
func (w *world) noteOldEpoch(h *host, from uint32, frame []byte) {
	var rf wire.ReplicaFrame
	var body wire.ReplicaMessage
	if proto.Unmarshal(frame, &rf) != nil || proto.Unmarshal(rf.Message.GetPayload(), &body) != nil {
		return
	}
	if body.Epoch < h.driver.Epoch() {
		h.driver.OldEpochMessage(from, body.Epoch)
		h.process()
	}
}

// adminTick sends the pending change, or resends it after a timeout.
func (w *world) adminTick() {
	a := w.admin
	if a == nil || a.next >= len(a.changes) || w.now < a.startAt {
		return
	}
	if a.frame == nil {
		ch := a.changes[a.next]
		ch.Epoch = a.epoch
		sc := membership.SignedChange{Change: ch.Encode()}
		sc.Signatures = append(sc.Signatures, membership.Sign(clusterID, sc.Change, a.key))
		a.number++
		req := &wire.Request{ClientId: a.signer.Public(), RequestNumber: uint64(a.number), ConfigChange: sc.Encode()}
		payload, err := proto.Marshal(req)
		if err != nil {
			w.violate(KindInternal, err.Error())
			return
		}
		frame, err := proto.Marshal(&wire.Signed{Payload: payload, Signature: a.signer.Sign(crypto.DomainClientRequest, payload)})
		if err != nil {
			w.violate(KindInternal, err.Error())
			return
		}
		w.check.issued(req.ClientId, req.RequestNumber, nil)
		a.frame, a.results, a.sentAt = frame, map[uint32]string{}, w.now-adminTimeoutTicks
	}
	if w.now-a.sentAt >= adminTimeoutTicks {
		a.sentAt = w.now
		for to := range uint32(len(w.byID)) {
			for _, dst := range w.byID[to] {
				w.transmit(0, event{kind: evRequest, client: -1, to: dst, epoch: dst.epoch, frame: a.frame})
			}
		}
	}
}

// adminReply takes a reply to the pending change: f+1 matching results
// from distinct hosts decide it.
func (w *world) adminReply(from uint32, r *wire.Reply) {
	a := w.admin
	if a.frame == nil || r.RequestNumber != uint64(a.number) {
		return
	}
	if _, seen := a.results[from]; seen {
		return
	}
	a.results[from] = string(r.Result)
	count := 0
	for _, res := range a.results {
		if res == string(r.Result) {
			count++
		}
	}
	if count < w.f+1 {
		return
	}
	ch := a.changes[a.next]
	ok := strings.HasPrefix(string(r.Result), execution.ConfigChangeAccepted)
	if !ok && strings.Contains(string(r.Result), "send this one after it") && a.retries < adminRetries {
		// The previous change has not taken effect yet: send again later.
		a.retries++
		a.frame = nil
		a.startAt = w.now + 50 + w.rng.Int64N(100)
		return
	}
	a.retries = 0
	outcome := "ok"
	if !ok {
		outcome = strings.ReplaceAll(string(r.Result), " ", "_")
	}
	a.done = append(a.done, fmt.Sprintf("%s:%d=%s", ch.Kind, ch.Member.Index, outcome))
	if ok {
		a.epoch++
		w.res.ConfigChanges++
		if ch.Kind == membership.RotateKey {
			w.rotate(ch.Member.Index)
		}
	}
	a.next++
	a.frame = nil
	a.startAt = w.now + w.rng.Int64N(100)
}

// adminDone reports whether every change was decided.
func (w *world) adminDone() bool { return w.admin == nil || w.admin.next >= len(w.admin.changes) }

// rotate marks member i's host for a restart with its new key, once the
// epoch that rotated it is in force there.
func (w *world) rotate(i uint32) {
	for _, h := range w.byID[i] {
		h.rotateTo = rotatedKey(i)
	}
}

// restartRotated restarts a host whose key was rotated away, as a fresh
// joiner with the new key: empty storage, and the history of a correct
// member.
func (w *world) restartRotated() {
	for _, h := range w.hosts {
		if h.rotateTo == nil || h.down {
			continue
		}
		if st, ok := h.driver.EpochStatus(); !ok || st.Member {
			continue // the rotating epoch is not in force here yet
		}
		var history membership.History
		for _, o := range w.hosts {
			if o.correct && !o.down {
				if hh := o.driver.ConfigHistory(); len(hh.Certificates) > len(history.Certificates) {
					history = hh
				}
			}
		}
		key := h.rotateTo
		h.rotateTo = nil
		h.crash()
		db, err := storage.OpenMem(storage.Options{})
		if err != nil {
			w.violate(KindInternal, err.Error())
			return
		}
		_ = h.db.Close()
		h.db, h.store, h.key, h.history = db, nil, key, history
		w.keys[h.id] = key
		h.cfg.Signer = crypto.NewSigner(key, clusterID)
		h.restart()
		w.res.Rotations++
	}
}

// checkMembership, at the end of a run, checks that correct hosts agree
// on the configuration history: for every epoch two of them hold, the
// same configuration from the same sequence on.
func (w *world) checkMembership() {
	if w.admin == nil {
		return
	}
	type proven struct {
		digest [32]byte
		from   uint64
		by     uint32
	}
	epochs := map[uint64]proven{}
	for _, h := range w.hosts {
		if !h.correct || h.down || h.driver == nil {
			continue
		}
		for _, c := range h.driver.ConfigHistory().Certificates {
			p := proven{c.Config.Digest(), c.Sequence, h.id}
			if prev, ok := epochs[c.Config.Epoch]; ok && (prev.digest != p.digest || prev.from != p.from) {
				w.violate(KindMembership, fmt.Sprintf("replicas %d and %d hold different configurations of epoch %d (from %d and %d)",
					prev.by, h.id, c.Config.Epoch, prev.from, p.from))
				return
			}
			epochs[c.Config.Epoch] = p
		}
	}
	w.res.Scenario += " changes=[" + strings.Join(w.admin.done, " ") + "]"
}
