package raftsim

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/wire"
)

// Reconfiguration runs (Config.Reconfigure): the cluster starts with
// Config.Replicas members and ReconfigSpares spares (replicas outside the
// configuration, raftmode.Config.Spare), every executor under the Raft
// mode's membership rules, and an administrator changes the configuration
// while the clients run and the network and crashes do their worst: it
// adds each spare, rotates a member's key, then removes one of the first
// members (both drawn from the seed). Each change is a signed request the administrator sends to every
// running replica, again every ReconfigRetryTicks, until some replica has
// applied it; the next follows a seeded pause later (after an addition, in
// half of the cases at once: a spare is then added while the one before is
// still a learner catching up). The run is not over
// before the last change is applied and the members (the removed one
// apart) converge.

// ReconfigSpares is the number of spares of a reconfiguration run, and
// ReconfigRetryTicks how often the administrator resends a change.
const (
	ReconfigSpares     = 2
	ReconfigRetryTicks = 60
	reconfigCluster    = "raftsim-reconfig"
)

// reconfig is the administrator's plan and progress.
type reconfig struct {
	admin   ed25519.PrivateKey
	rules   execution.MembershipRules
	changes []membership.Change
	// next is the index of the change in progress; sendAt when it is
	// (re)sent next.
	next   int
	sendAt int64
	// progressAt is when the last change was applied (0 before).
	progressAt int64
}

// replicaKey is replica i's deterministic key.
func replicaKey(i int) ed25519.PrivateKey {
	var seed [ed25519.SeedSize]byte
	binary.BigEndian.PutUint32(seed[:], uint32(i)+1)
	return ed25519.NewKeyFromSeed(seed[:])
}

func simMember(i int) membership.Member {
	return membership.Member{Index: uint32(i), PublicKey: replicaKey(i).Public().(ed25519.PublicKey), Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 26000+i)}
}

// newReconfig draws the plan: add the spares in order, then remove one of
// the genesis members.
func newReconfig(w *world, genesis int) *reconfig {
	var seed [ed25519.SeedSize]byte
	copy(seed[:], "raftsim administrator key seed!")
	admin := ed25519.NewKeyFromSeed(seed[:])
	g := membership.Config{Admins: []ed25519.PublicKey{admin.Public().(ed25519.PublicKey)}, AdminThreshold: 1}
	for i := range genesis {
		g.Members = append(g.Members, simMember(i))
	}
	rc := &reconfig{admin: admin, rules: execution.MembershipRules{
		ClusterID: reconfigCluster, Genesis: g, Rules: membership.Rules{MinMembers: 1},
		ActiveFrom: func(s uint64) uint64 { return s + 1 },
	}}
	epoch := uint64(0)
	for i := genesis; i < w.n; i++ {
		rc.changes = append(rc.changes, membership.Change{Epoch: epoch, Kind: membership.AddReplica, Member: simMember(i)})
		epoch++
	}
	rotated := uint32(w.rng.IntN(w.n))
	rc.changes = append(rc.changes, membership.Change{Epoch: epoch, Kind: membership.RotateKey,
		Member: membership.Member{Index: rotated, PublicKey: replicaKey(100 + int(rotated)).Public().(ed25519.PublicKey)}})
	epoch++
	victim := uint32(w.rng.IntN(genesis))
	rc.changes = append(rc.changes, membership.Change{Epoch: epoch, Kind: membership.RemoveReplica, Member: membership.Member{Index: victim}})
	rc.sendAt = 50 + w.rng.Int64N(maxReconfigPause-50)
	return rc
}

func (rc *reconfig) String() string {
	return fmt.Sprintf("reconfigure=%d-changes(remove %d)", len(rc.changes), rc.changes[len(rc.changes)-1].Member.Index)
}

// done reports whether every change is applied somewhere.
func (rc *reconfig) done() bool { return rc == nil || rc.next >= len(rc.changes) }

// adminClient is the administrator's client id.
var adminClient = []byte("raftsim-administrator-client-id-0")

// apply runs the administrator for one tick.
func (rc *reconfig) apply(w *world) {
	if rc.done() {
		return
	}
	target := rc.changes[rc.next].Epoch + 1
	for _, h := range w.hosts {
		if !h.down && h.core != nil && h.core.Epoch() >= target {
			w.res.ConfigChanges++
			rc.next++
			rc.progressAt = w.now
			rc.sendAt = w.now + 50 + w.rng.Int64N(maxReconfigPause-50)
			if rc.changes[rc.next-1].Kind == membership.AddReplica && w.rng.IntN(2) == 0 {
				// The next at once, while the spare just added is likely
				// still a learner catching up.
				rc.sendAt = w.now + 1
			}
			return
		}
	}
	if w.now < rc.sendAt {
		return
	}
	rc.sendAt = w.now + ReconfigRetryTicks
	ch := rc.changes[rc.next]
	sc := membership.SignedChange{Change: ch.Encode()}
	sc.Signatures = append(sc.Signatures, membership.Sign(reconfigCluster, sc.Change, rc.admin))
	req := &wire.Request{ClientId: adminClient, RequestNumber: uint64(rc.next) + 1, ConfigChange: sc.Encode()}
	for _, h := range w.hosts {
		if !h.down {
			w.transmit(event{kind: evRequest, client: -1, to: h, epoch: h.epoch, req: req})
		}
	}
}

// participates reports whether h is a member of the latest configuration
// any running replica applied (every replica outside a reconfiguration
// run): spares not yet added and removed members are left out of the
// convergence and stable-leader checks.
func (w *world) participates(h *host) bool {
	if w.reconf == nil {
		return true
	}
	var latest membership.Config
	for _, o := range w.hosts {
		if o.core != nil && !o.down && o.core.Epoch() >= latest.Epoch {
			latest = o.core.Membership()
		}
	}
	return latest.Position(h.id) >= 0
}

// overdue reports a plan that made no progress within bound ticks of the
// later of settled and its last step.
func (rc *reconfig) overdue(now, settled, bound int64) string {
	if rc.done() || now <= max(settled, rc.progressAt)+bound+maxReconfigPause {
		return ""
	}
	return fmt.Sprintf("configuration change %d (%s) not applied within %d ticks", rc.next, rc.changes[rc.next], bound+maxReconfigPause)
}

// maxReconfigPause is the longest pause between two changes.
const maxReconfigPause = 350
