package execution

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/syndtr/goleveldb/leveldb"

	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/storage"
)

// executorMembershipKey holds the membership record once a configuration
// change has executed (absent: the genesis configuration, epoch 0). It is
// executor state: written in the batch that executed the change, covered
// by StateDigest and copied by state transfer.
const executorMembershipKey = storage.PrefixExecutor + "membership"

// Results of a configuration change request: the reply's result starts
// with one of these, followed by what happened.
const (
	// ConfigChangeAccepted starts the result of an applied change:
	// "ok: epoch E from sequence S: <change>".
	ConfigChangeAccepted = "ok: "
	// ConfigChangeRefused starts the result of a refused change, followed
	// by the reason.
	ConfigChangeRefused = "refused: "
)

// MembershipRules configure how an executor applies configuration change
// requests (WithMembership).
type MembershipRules struct {
	// ClusterID is the cluster's id: administrators' signatures are over it.
	ClusterID string
	// Genesis is the cluster file's configuration (epoch 0).
	Genesis membership.Config
	// Rules are the runtime's rules on a change (membership.Rules).
	Rules membership.Rules
	// ActiveFrom returns, for a change executed at sequence, the first
	// sequence the new configuration orders (at least sequence+1). PBFT
	// starts a new epoch after the next checkpoint; Raft at once. nil:
	// sequence+1.
	ActiveFrom func(sequence uint64) uint64
}

// WithMembership lets the executor apply configuration change requests
// (Request.ConfigChange) under rules; without it such requests are
// refused. Every replica of a cluster must use the same rules.
func WithMembership(rules MembershipRules) ExecutorOption {
	return func(c *executorConfig) error {
		if err := rules.Genesis.Check(); err != nil {
			return fmt.Errorf("membership genesis: %w", err)
		}
		if rules.Genesis.Epoch != 0 {
			return fmt.Errorf("membership genesis has epoch %d, want 0", rules.Genesis.Epoch)
		}
		c.membership = &rules
		return nil
	}
}

// Membership is the membership state an executor records.
type Membership struct {
	// Current is the configuration of the latest change executed (the
	// genesis when none): the one in force from ActiveFrom on.
	Current membership.Config
	// ActiveFrom is the first sequence Current orders (0 for genesis).
	ActiveFrom uint64
	// Previous is the configuration in force before ActiveFrom (equal to
	// Current for genesis).
	Previous membership.Config
	// Change is the signed change that produced Current (empty for
	// genesis), and ExecutedAt the sequence it executed at.
	Change     membership.SignedChange
	ExecutedAt uint64
}

// At returns the configuration that orders sequence.
func (m Membership) At(sequence uint64) membership.Config {
	if sequence >= m.ActiveFrom {
		return m.Current
	}
	return m.Previous
}

// Pending reports whether a change executed and its configuration is not
// yet in force after lastExecuted.
func (m Membership) Pending(lastExecuted uint64) bool {
	return m.ActiveFrom > lastExecuted+1
}

// Membership returns the membership state after the last executed
// sequence. Without WithMembership it is a zero Membership.
func (e *Executor) Membership() Membership { return e.member }

func (e *Executor) genesisMembership() Membership {
	if e.memberRules == nil {
		return Membership{}
	}
	g := e.memberRules.Genesis
	return Membership{Current: g, Previous: g}
}

// applyConfigChange executes one configuration change request at
// sequence, staging the new membership in e.stagedMember (written and
// made current when the batch is), and returns the request's result.
func (e *Executor) applyConfigChange(sequence uint64, req Request) []byte {
	if e.memberRules == nil {
		return []byte(ConfigChangeRefused + "this replica's runtime does not support configuration changes")
	}
	cur := e.member
	if e.stagedMember != nil {
		cur = *e.stagedMember
	}
	if cur.Pending(sequence - 1) {
		return []byte(fmt.Sprintf("%sthe change to epoch %d takes effect at sequence %d; send this one after it", ConfigChangeRefused, cur.Current.Epoch, cur.ActiveFrom))
	}
	sc, err := membership.DecodeSignedChange(req.ConfigChange)
	if err != nil {
		return []byte(ConfigChangeRefused + err.Error())
	}
	next, ch, err := cur.Current.Apply(e.memberRules.ClusterID, sc, e.memberRules.Rules)
	if err != nil {
		return []byte(ConfigChangeRefused + err.Error())
	}
	from := sequence + 1
	if e.memberRules.ActiveFrom != nil {
		from = max(e.memberRules.ActiveFrom(sequence), sequence+1)
	}
	staged := Membership{Current: next, ActiveFrom: from, Previous: cur.Current, Change: sc, ExecutedAt: sequence}
	e.stagedMember = &staged
	e.logger.Info("executor: configuration change executed", "sequence", sequence, "change", ch.String(), "epoch", next.Epoch, "active_from", from)
	return []byte(fmt.Sprintf("%sepoch %d from sequence %d: %s", ConfigChangeAccepted, next.Epoch, from, ch))
}

// stageMembership adds the staged membership record to batch.
func (e *Executor) stageMembership(batch *leveldb.Batch) {
	if e.stagedMember != nil {
		batch.Put([]byte(executorMembershipKey), encodeMembership(*e.stagedMember))
	}
}

// commitMembership makes the staged membership current after its batch
// was written.
func (e *Executor) commitMembership() {
	if e.stagedMember != nil {
		e.member = *e.stagedMember
		e.memberDigest = sha256.Sum256(encodeMembership(e.member))
		e.memberRecorded = true
		e.stagedMember = nil
	}
}

// encodeMembership encodes a membership record:
//
//	uvarint(activeFrom) || uvarint(executedAt) ||
//	uvarint(len) || previous config || uvarint(len) || current config ||
//	signed change
func encodeMembership(m Membership) []byte {
	var out []byte
	out = binary.AppendUvarint(out, m.ActiveFrom)
	out = binary.AppendUvarint(out, m.ExecutedAt)
	prev, cur := m.Previous.Encode(), m.Current.Encode()
	out = binary.AppendUvarint(out, uint64(len(prev)))
	out = append(out, prev...)
	out = binary.AppendUvarint(out, uint64(len(cur)))
	out = append(out, cur...)
	return append(out, m.Change.Encode()...)
}

var errCorruptMembership = errors.New("corrupt membership record")

// decodeMembership parses and checks a membership record: both
// configurations valid, consecutive epochs, the change producing the
// current one is not re-checked (it was when executed, or the state is
// certified).
func decodeMembership(b []byte) (Membership, error) {
	r := bytes.NewReader(b)
	var m Membership
	var err error
	if m.ActiveFrom, err = binary.ReadUvarint(r); err != nil {
		return Membership{}, fmt.Errorf("%w: active-from: %v", errCorruptMembership, err)
	}
	if m.ExecutedAt, err = binary.ReadUvarint(r); err != nil || m.ExecutedAt >= m.ActiveFrom {
		return Membership{}, fmt.Errorf("%w: executed at %d, active from %d", errCorruptMembership, m.ExecutedAt, m.ActiveFrom)
	}
	if m.Previous, err = readMembershipConfig(r); err != nil {
		return Membership{}, err
	}
	if m.Current, err = readMembershipConfig(r); err != nil {
		return Membership{}, err
	}
	if m.Current.Epoch != m.Previous.Epoch+1 {
		return Membership{}, fmt.Errorf("%w: epochs %d then %d", errCorruptMembership, m.Previous.Epoch, m.Current.Epoch)
	}
	rest := make([]byte, r.Len())
	_, _ = r.Read(rest)
	if m.Change, err = membership.DecodeSignedChange(rest); err != nil {
		return Membership{}, fmt.Errorf("%w: %w", errCorruptMembership, err)
	}
	return m, nil
}

// readMembershipConfig reads one length-prefixed configuration of a
// membership record.
func readMembershipConfig(r *bytes.Reader) (membership.Config, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(r.Len()) || n > membership.MaxEncodedConfig {
		return membership.Config{}, fmt.Errorf("%w: configuration length", errCorruptMembership)
	}
	raw := make([]byte, n)
	_, _ = r.Read(raw)
	c, err := membership.Decode(raw)
	if err != nil {
		return membership.Config{}, fmt.Errorf("%w: %w", errCorruptMembership, err)
	}
	return c, nil
}

// loadMembership reads the membership record (absent: genesis).
func (e *Executor) loadMembership() error {
	e.member, e.memberRecorded, e.memberDigest = e.genesisMembership(), false, [32]byte{}
	value, err := e.ldb.Get([]byte(executorMembershipKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("executor: load membership: %w", err)
	}
	m, err := decodeMembership(value)
	if err != nil {
		return fmt.Errorf("executor: load membership: %w", err)
	}
	if m.ExecutedAt > e.lastExecuted {
		return fmt.Errorf("executor: load membership: %w: executed at %d, above last executed %d", errCorruptMembership, m.ExecutedAt, e.lastExecuted)
	}
	e.member, e.memberRecorded, e.memberDigest = m, true, sha256.Sum256(value)
	return nil
}

// checkMembershipEntry checks a transferred membership record.
func (e *Executor) checkMembershipEntry(value []byte) error {
	m, err := decodeMembership(value)
	if err != nil {
		return err
	}
	if m.ExecutedAt > e.restore.lastExecuted {
		return fmt.Errorf("%w: executed at %d, above last executed %d", errCorruptMembership, m.ExecutedAt, e.restore.lastExecuted)
	}
	return nil
}
