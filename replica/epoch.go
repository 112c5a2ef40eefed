package replica

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// Configuration epochs (docs/architecture.md, "Configuration epochs"). A
// configuration change executes at s inside a batch (the executor runs
// WithMembership, ActiveFrom(s) = ceil(s/K)*K + 1); the driver then ends
// the core's epoch at E = ActiveFrom(s) - 1 (protocol.Replica.EndAt) and
// never executes an old-epoch batch above E. When the checkpoint at E is
// stable it signs a ConfigVote (next epoch, configuration digest, E+1,
// state digest at E) and sends it to the members of both configurations;
// a quorum of the old configuration's votes makes a membership.Certificate,
// which the driver stores (EpochStorage.SaveEpoch: the one durable switch
// point) before it starts the next epoch's core at base E, or, when this
// replica is not a member of the new configuration, becomes removed.

// EpochStorage stores the configuration certificates of the epochs this
// replica switched to. *storage.DB and *MemoryStorage implement it.
type EpochStorage interface {
	// SaveEpoch durably records the switch to epoch (the stored epoch + 1)
	// with its encoded wire.ConfigCertificate, atomically.
	SaveEpoch(epoch uint64, encodedCert []byte) error
	// LoadEpochs returns the certificates of epochs 1.. the stored epoch.
	LoadEpochs() ([][]byte, error)
}

// EpochNetwork sends the configuration messages, addressed by member index
// (not core position). Like Network, it must not block or call back.
type EpochNetwork interface {
	SendConfigVote(toMember uint32, vote *wire.Signed)
	SendConfigCertificate(toMember uint32, cert *wire.ConfigCertificate)
	// RequestConfig asks a member for the certificates after epoch (the
	// receiver calls OldEpochMessage): a replica that is not a member of
	// the configuration it knows polls with it.
	RequestConfig(toMember uint32, epoch uint64)
}

// MembershipExecutor is an Executor that applies configuration changes
// (*execution.Executor run WithMembership).
type MembershipExecutor interface {
	Membership() execution.Membership
}

// Epochs makes a Driver follow configuration epochs. The Executor must
// implement MembershipExecutor and run WithMembership with the same
// genesis and rules, and ActiveFrom(Core.CheckpointInterval).
type Epochs struct {
	ClusterID string
	Genesis   membership.Config
	Rules     membership.Rules
	// Self is this replica's member index; PublicKey the key Core.Signer
	// signs with (a member whose key the configuration rotated away takes
	// no part until restarted with the new key).
	Self      uint32
	PublicKey ed25519.PublicKey
	// History, when longer than what Storage holds, is a history fetched
	// from the members (a joiner's, or a replica restarted with a rotated
	// key): it is verified from the genesis and stored.
	History membership.History
	// NewVerifier returns the verifier of an epoch's configuration:
	// keys by position, restricted to cfg.Epoch (WithEpoch).
	NewVerifier func(cfg membership.Config) *protocol.MessageVerifier
	Storage     EpochStorage
	Network     EpochNetwork
	// OnEpoch, when set, is called after Recover and after every switch
	// with the configuration in force (to update the transport's members,
	// the runtime's verifier and status).
	OnEpoch func(EpochStatus)
}

// EpochStatus is where a replica stands in the configuration history.
type EpochStatus struct {
	Config membership.Config
	// Base is the sequence the epoch starts after.
	Base uint64
	// Member is false when this replica is not a member of Config (removed,
	// rotated away, or a joiner not added yet): it runs no core.
	Member bool
	// Position is this replica's core ID in Config when Member.
	Position uint32
}

// ActiveFrom returns the executor's ActiveFrom for checkpoint interval k:
// a change executed at s takes effect after the next checkpoint,
// ceil(s/k)*k + 1.
func ActiveFrom(k uint64) func(uint64) uint64 {
	return func(s uint64) uint64 { return (s+k-1)/k*k + 1 }
}

// epochState is the driver's epoch bookkeeping.
type epochState struct {
	cfg     Epochs
	history []membership.Certificate
	current membership.Config
	base    uint64
	member  bool
	// endAt is the end of the current epoch once a change executed (0:
	// none pending); next the configuration it starts.
	endAt uint64
	// ownVote is this replica's signed vote for the next epoch, once the
	// checkpoint at endAt is stable; vote its content.
	ownVote *wire.Signed
	vote    membership.Vote
	// votes are the old members' signed votes for the next epoch, by index.
	votes map[uint32]*wire.Signed
	// ticks counts Ticks; voteSent is when the own vote last went out;
	// answered rate-limits answers to members of older epochs.
	ticks, voteSent uint64
	answered        map[uint32]uint64
	// discarded counts old-epoch batches above the end not executed.
	discarded uint64
}

// epochResendTicks is how often a replica resends its vote while the
// switch waits, and the least interval between two answers to one lagging
// member.
const epochResendTicks = 100

// ErrNotEpochAware: an epoch input reached a driver without Config.Epochs.
var ErrNotEpochAware = errors.New("replica: configuration epochs are not enabled")

// ErrConfigVote: a configuration vote that is malformed, from no member of
// the ending configuration, or badly signed.
var ErrConfigVote = errors.New("replica: configuration vote refused")

func newEpochState(cfg Epochs) (*epochState, error) {
	switch {
	case cfg.NewVerifier == nil || cfg.Storage == nil || cfg.Network == nil:
		return nil, errors.New("replica: Epochs needs NewVerifier, Storage and Network")
	case cfg.Genesis.Epoch != 0:
		return nil, fmt.Errorf("replica: genesis of epoch %d", cfg.Genesis.Epoch)
	}
	return &epochState{cfg: cfg, current: cfg.Genesis, votes: map[uint32]*wire.Signed{}, answered: map[uint32]uint64{}}, nil
}

// Epoch returns the epoch in force at this replica (0 without epochs).
func (d *Driver) Epoch() uint64 {
	if d.ep == nil {
		return 0
	}
	return d.ep.current.Epoch
}

// EpochStatus returns where this replica stands; ok is false without
// epochs.
func (d *Driver) EpochStatus() (EpochStatus, bool) {
	if d.ep == nil {
		return EpochStatus{}, false
	}
	return d.ep.status(), true
}

// ConfigHistory returns the verified certificates from the genesis to the
// epoch in force (the answer to a config_query).
func (d *Driver) ConfigHistory() membership.History {
	if d.ep == nil {
		return membership.History{}
	}
	return membership.History{Certificates: append([]membership.Certificate(nil), d.ep.history...)}
}

// MemberAt returns the member index of core position pos in the epoch in
// force (the runtime's Send translation).
func (d *Driver) MemberAt(pos uint32) (uint32, bool) {
	if d.ep == nil {
		return pos, true
	}
	if int(pos) >= len(d.ep.current.Members) {
		return 0, false
	}
	return d.ep.current.Members[pos].Index, true
}

// PositionOf returns the core position of member index in the epoch in
// force (the runtime's receive translation).
func (d *Driver) PositionOf(index uint32) (uint32, bool) {
	if d.ep == nil {
		return index, true
	}
	p := d.ep.current.Position(index)
	return uint32(p), p >= 0
}

// DiscardedBeyondEnd counts committed old-epoch batches above the epoch's
// end that the driver did not execute.
func (d *Driver) DiscardedBeyondEnd() uint64 {
	if d.ep == nil {
		return 0
	}
	return d.ep.discarded
}

// everMember reports whether index is a member of the genesis or of a
// configuration of the history (and so may be owed certificates): the
// answer map stays bounded by the members ever named.
func (e *epochState) everMember(index uint32) bool {
	if _, ok := e.cfg.Genesis.Member(index); ok {
		return true
	}
	for _, c := range e.history {
		if _, ok := c.Config.Member(index); ok {
			return true
		}
	}
	return false
}

func (e *epochState) status() EpochStatus {
	st := EpochStatus{Config: e.current, Base: e.base, Member: e.member}
	if e.member {
		st.Position = uint32(e.current.Position(e.cfg.Self))
	}
	return st
}

// memberOf reports whether this replica takes part in cfg: listed, with
// the key it signs with.
func (e *epochState) memberOf(cfg membership.Config) bool {
	m, ok := cfg.Member(e.cfg.Self)
	return ok && bytes.Equal(m.PublicKey, e.cfg.PublicKey)
}

// beyondEnd reports whether an old-epoch batch at seq must not execute.
// It first looks at the executor's membership: a state transfer may have
// installed a state in which the change already executed.
func (d *Driver) beyondEnd(seq uint64) bool {
	if d.ep == nil {
		return false
	}
	d.noteExecuted()
	if d.ep.endAt == 0 || seq <= d.ep.endAt {
		return false
	}
	d.ep.discarded++
	return true
}

// noteExecuted ends the core's epoch once the executor applied a change
// that starts the next one.
func (d *Driver) noteExecuted() {
	if d.ep == nil || d.ep.endAt != 0 {
		return
	}
	mx, ok := d.exec.(MembershipExecutor)
	if !ok {
		return
	}
	m := mx.Membership()
	if m.Current.Epoch != d.ep.current.Epoch+1 || m.ActiveFrom <= d.ep.base+1 {
		return
	}
	d.ep.endAt = m.ActiveFrom - 1
	if err := d.core.EndAt(d.ep.endAt); err != nil {
		d.log.Error("end of epoch", "err", err)
	}
}

// noteStable votes for the next epoch once the checkpoint at its end is
// stable.
func (d *Driver) noteStable(cp *checkpoint.Certificate) {
	if d.ep == nil || d.ep.endAt == 0 || cp.Sequence != d.ep.endAt || d.ep.ownVote != nil {
		return
	}
	m := d.exec.(MembershipExecutor).Membership()
	e := d.ep
	e.vote = membership.Vote{Epoch: m.Current.Epoch, ConfigDigest: m.Current.Digest(), Sequence: e.endAt + 1,
		From: e.cfg.Self, StateDigest: cp.StateDigest}
	payload := e.vote.Encode()
	e.ownVote = &wire.Signed{Payload: payload, Signature: d.cfg.Core.Signer.Sign(crypto.DomainConfigVote, payload)}
	e.votes[e.cfg.Self] = e.ownVote
	d.sendVote()
	if err := d.tryCertificate(); err != nil {
		d.log.Error("configuration certificate", "err", err)
	}
}

// sendVote sends the own vote to the members of both configurations.
func (d *Driver) sendVote() {
	e := d.ep
	e.voteSent = e.ticks
	m := d.exec.(MembershipExecutor).Membership()
	seen := map[uint32]bool{e.cfg.Self: true}
	for _, cfg := range []membership.Config{e.current, m.Current} {
		for _, mem := range cfg.Members {
			if !seen[mem.Index] {
				seen[mem.Index] = true
				e.cfg.Network.SendConfigVote(mem.Index, e.ownVote)
			}
		}
	}
}

// epochTick resends the own vote while the switch waits; a replica that
// is not a member of the configuration it knows asks its members for
// newer certificates (a joiner waiting to be added, a removed member).
func (d *Driver) epochTick() {
	e := d.ep
	if e == nil {
		return
	}
	e.ticks++
	if e.ownVote != nil && e.ticks-e.voteSent >= epochResendTicks {
		d.sendVote()
	}
	if !e.member && e.ticks%epochResendTicks == 0 {
		for _, m := range e.current.Members {
			if m.Index != e.cfg.Self {
				e.cfg.Network.RequestConfig(m.Index, e.current.Epoch)
			}
		}
	}
}

// StepConfigVote takes a member's signed vote for the next epoch. A vote
// for an epoch this replica already switched to is answered with the
// certificates the sender lacks.
func (d *Driver) StepConfigVote(signed *wire.Signed) error {
	if d.ep == nil {
		return ErrNotEpochAware
	}
	var v wire.ConfigVote
	if signed == nil || len(signed.GetPayload()) > 1<<10 || proto.Unmarshal(signed.GetPayload(), &v) != nil {
		return fmt.Errorf("%w: malformed", ErrConfigVote)
	}
	e := d.ep
	if v.Epoch <= e.current.Epoch {
		d.answerLagging(v.From, v.Epoch-1)
		return nil
	}
	if v.Epoch != e.current.Epoch+1 {
		return fmt.Errorf("%w: for epoch %d, this replica is in %d", ErrConfigVote, v.Epoch, e.current.Epoch)
	}
	m, ok := e.current.Member(v.From)
	if !ok || !crypto.Verify(m.PublicKey, e.cfg.ClusterID, crypto.DomainConfigVote, signed.Payload, signed.Signature) {
		return fmt.Errorf("%w: from %d", ErrConfigVote, v.From)
	}
	if _, dup := e.votes[v.From]; dup {
		return nil
	}
	e.votes[v.From] = signed
	return d.tryCertificate()
}

// tryCertificate switches once a quorum of the old configuration voted
// what this replica's own vote says.
func (d *Driver) tryCertificate() error {
	e := d.ep
	if e.ownVote == nil {
		return nil
	}
	var votes []*wire.Signed
	for _, s := range e.votes {
		var v wire.ConfigVote
		if proto.Unmarshal(s.Payload, &v) == nil && bytes.Equal(s.Payload, d.matchingPayload(v.From)) {
			votes = append(votes, s)
		}
	}
	if len(votes) < e.current.Quorum() {
		return nil
	}
	m := d.exec.(MembershipExecutor).Membership()
	cert := membership.Certificate{Change: m.Change, Config: m.Current, Sequence: e.vote.Sequence,
		StateDigest: e.vote.StateDigest, Votes: votes}
	if _, err := cert.Verify(e.cfg.ClusterID, e.current, e.cfg.Rules); err != nil {
		return fmt.Errorf("replica: own configuration certificate: %w", err)
	}
	return d.switchTo(cert, true)
}

// matchingPayload is the encoding of the own vote as member from would
// sign it.
func (d *Driver) matchingPayload(from uint32) []byte {
	v := d.ep.vote
	v.From = from
	return v.Encode()
}

// StepConfigCertificate takes a certificate of the next epoch from another
// replica: once verified against the configuration in force, this replica
// switches (and fetches the base state if it has not executed that far).
func (d *Driver) StepConfigCertificate(wc *wire.ConfigCertificate) error {
	if d.ep == nil {
		return ErrNotEpochAware
	}
	cert, err := membership.CertificateFromWire(wc)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	if cert.Config.Epoch != d.ep.current.Epoch+1 {
		return nil // old, or not next: the sender sends every missing one in order
	}
	if _, err := cert.Verify(d.ep.cfg.ClusterID, d.ep.current, d.ep.cfg.Rules); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	return d.switchTo(cert, false)
}

// OldEpochMessage tells the driver that member from sent a message of an
// older epoch: it answers (at most once per epochResendTicks) with the
// certificates from that epoch on.
func (d *Driver) OldEpochMessage(from uint32, epoch uint64) {
	if d.ep != nil {
		d.answerLagging(from, epoch)
	}
}

func (d *Driver) answerLagging(from uint32, epoch uint64) {
	e := d.ep
	if !e.everMember(from) {
		return // answers go only to replicas some configuration named
	}
	if last, ok := e.answered[from]; ok && e.ticks-last < epochResendTicks {
		return
	}
	e.answered[from] = e.ticks
	for _, c := range e.history {
		if c.Config.Epoch > epoch {
			e.cfg.Network.SendConfigCertificate(from, c.Wire())
		}
	}
}

// switchTo stores cert (the durable switch) and starts its epoch; own
// says this replica assembled it (then it tells the new members).
func (d *Driver) switchTo(cert membership.Certificate, own bool) error {
	e := d.ep
	b, err := proto.Marshal(cert.Wire())
	if err != nil {
		return fmt.Errorf("replica: encode configuration certificate: %w", err)
	}
	if err := e.cfg.Storage.SaveEpoch(cert.Config.Epoch, b); err != nil {
		return fmt.Errorf("replica: save epoch %d: %w", cert.Config.Epoch, err)
	}
	prev := e.current
	e.history = append(e.history, cert)
	if err := d.startEpoch(true); err != nil {
		return err
	}
	if own {
		for _, m := range cert.Config.Members {
			if _, old := prev.Member(m.Index); !old && m.Index != e.cfg.Self {
				e.cfg.Network.SendConfigCertificate(m.Index, cert.Wire())
			}
		}
	}
	d.log.Info("configuration epoch", "epoch", e.current.Epoch, "base", e.base, "member", e.member)
	return nil
}

// startEpoch makes the last certificate's configuration the one in force:
// a new core at its base when this replica is a member. enter is true when
// this replica enters the epoch now (a switch, or a recovery that adopts
// a given history beyond the stored one): it stores view 0 of the epoch.
// A recovery into an epoch it already ran keeps the stored view: the core
// restores it (Restore), and a replica must never go back to a view it
// left (its VIEW-CHANGE promised not to prepare or commit there again).
func (d *Driver) startEpoch(enter bool) error {
	e := d.ep
	e.current, e.base = e.cfg.Genesis, 0
	var baseDigest [32]byte
	if n := len(e.history); n > 0 {
		last := e.history[n-1]
		e.current, e.base, baseDigest = last.Config, last.Sequence-1, last.StateDigest
	}
	e.endAt, e.ownVote, e.vote = 0, nil, membership.Vote{}
	clear(e.votes)
	e.member = e.memberOf(e.current)
	if e.member {
		core := d.cfg.Core
		core.ID, core.N = uint32(e.current.Position(e.cfg.Self)), len(e.current.Members)
		core.Epoch, core.Base, core.BaseStateDigest = e.current.Epoch, e.base, baseDigest
		c, err := protocol.New(core)
		if err != nil {
			return fmt.Errorf("replica: core of epoch %d: %w", e.current.Epoch, err)
		}
		d.cfg.Core, d.core = core, c
		d.cfg.Verifier = e.cfg.NewVerifier(e.current)
		if d.fetcher.Active() {
			d.fetcher.Stop() // an old-epoch transfer: the base state is fetched below if needed
		}
		d.behind = nil
		d.fetcher = d.newFetcher()
		if e.current.Epoch > 0 && enter {
			if err := d.store.SaveViewState(0, true); err != nil {
				return fmt.Errorf("replica: epoch %d: save view: %w", e.current.Epoch, err)
			}
		}
		if e.current.Epoch > 0 && d.exec.LastExecuted() < e.base {
			d.core.NeedBaseState()
		}
	}
	if e.cfg.OnEpoch != nil {
		e.cfg.OnEpoch(e.status())
	}
	return nil
}

// recoverEpoch loads the stored epochs (and a longer given history) and
// starts the epoch in force, before the core's own recovery.
func (d *Driver) recoverEpoch() error {
	e := d.ep
	stored, err := e.cfg.Storage.LoadEpochs()
	if err != nil {
		return fmt.Errorf("replica: recover epochs: %w", err)
	}
	var h membership.History
	for i, b := range stored {
		var wc wire.ConfigCertificate
		if err := proto.Unmarshal(b, &wc); err != nil {
			return fmt.Errorf("replica: recover certificate of epoch %d: %w", i+1, err)
		}
		cert, err := membership.CertificateFromWire(&wc)
		if err != nil {
			return fmt.Errorf("replica: recover certificate of epoch %d: %w", i+1, err)
		}
		h.Certificates = append(h.Certificates, cert)
	}
	if _, _, err := membership.VerifyHistory(e.cfg.ClusterID, e.cfg.Genesis, h, e.cfg.Rules); err != nil {
		return fmt.Errorf("replica: recover epochs: %w", err)
	}
	if len(e.cfg.History.Certificates) > len(h.Certificates) {
		if _, _, err := membership.VerifyHistory(e.cfg.ClusterID, e.cfg.Genesis, e.cfg.History, e.cfg.Rules); err != nil {
			return fmt.Errorf("replica: given history: %w", err)
		}
		for _, cert := range e.cfg.History.Certificates[len(h.Certificates):] {
			b, err := proto.Marshal(cert.Wire())
			if err != nil {
				return fmt.Errorf("replica: encode configuration certificate: %w", err)
			}
			if err := e.cfg.Storage.SaveEpoch(cert.Config.Epoch, b); err != nil {
				return fmt.Errorf("replica: save given epoch %d: %w", cert.Config.Epoch, err)
			}
		}
		h = e.cfg.History
	}
	// A certificate that was not stored is an epoch this replica never
	// switched to (SaveEpoch is the switch point): it enters it now.
	e.history = h.Certificates
	return d.startEpoch(len(h.Certificates) > len(stored))
}

// resumeEpochEnd, after recovery, ends the epoch again if the executor
// already applied a change (a crash between the change and the switch),
// and votes again if the checkpoint at the end is already stable.
func (d *Driver) resumeEpochEnd() {
	if d.ep == nil || !d.ep.member {
		return
	}
	d.noteExecuted()
	if st := d.core.StableCheckpoint(); d.ep.endAt != 0 && st.Sequence == d.ep.endAt {
		d.noteStable(&st)
	}
}

// ErrNotMember: an input reached a replica that is not a member of the
// configuration in force (removed, rotated away, or not added yet).
var ErrNotMember = errors.New("replica: not a member of the configuration in force")

// replyID is the Replica a reply names: the member index with epochs
// (clients know members by index), else the core's ID.
func (d *Driver) replyID() uint32 {
	if d.ep != nil {
		return d.ep.cfg.Self
	}
	return d.cfg.Core.ID
}

// inactive reports whether this replica runs no core (not a member).
func (d *Driver) inactive() bool { return d.ep != nil && !d.ep.member }
