package membership

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// MaxEncodedChange bounds an encoded SignedChange (the change and its
// signatures).
const MaxEncodedChange = 64 << 10

// Kind says what a Change does.
type Kind int

// The kinds of change.
const (
	// AddReplica adds Change.Member.
	AddReplica Kind = iota + 1
	// RemoveReplica removes the member with Change.Member.Index.
	RemoveReplica
	// RotateKey replaces the key of the member with Change.Member.Index by
	// Change.Member.PublicKey.
	RotateKey
	// SetAdmins replaces the administrators by Change.Admins and
	// Change.AdminThreshold.
	SetAdmins
)

func (k Kind) String() string {
	switch k {
	case AddReplica:
		return "add-replica"
	case RemoveReplica:
		return "remove-replica"
	case RotateKey:
		return "rotate-key"
	case SetAdmins:
		return "set-admins"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Change is one configuration change, for the configuration of Epoch.
type Change struct {
	Epoch          uint64
	Kind           Kind
	Member         Member // AddReplica: all of it; RemoveReplica: Index; RotateKey: Index and PublicKey
	Admins         []ed25519.PublicKey
	AdminThreshold int
}

// Rules are what a runtime adds to the checks every change passes.
type Rules struct {
	// MinMembers is the fewest members a configuration may be left with
	// (PBFT: 4, so that it still tolerates one Byzantine member; Raft: 1).
	MinMembers int
}

// Errors Apply wraps; the message after the colon says what exactly.
var (
	// ErrRefused: the change is well formed and properly signed, but
	// applying it would be invalid or unsafe.
	ErrRefused = errors.New("membership: change refused")
	// ErrBadSignatures: the change lacks a threshold of valid signatures
	// of distinct administrators of its epoch.
	ErrBadSignatures = errors.New("membership: change not approved by the administrators")
	// ErrMalformed: the change or its encoding is malformed.
	ErrMalformed = errors.New("membership: malformed change")
	// ErrWrongEpoch: the change was made for another epoch's
	// configuration (already applied, or not yet current).
	ErrWrongEpoch = errors.New("membership: change for another epoch")
)

// SignedChange is an encoded Change and administrators' signatures over it.
type SignedChange struct {
	Change     []byte
	Signatures []AdminSignature
}

// AdminSignature is one administrator's signature over an encoded Change.
type AdminSignature struct {
	PublicKey ed25519.PublicKey
	Signature []byte
}

// Encode returns the change's protobuf encoding (wire.ConfigChange): the
// bytes administrators sign.
func (ch Change) Encode() []byte {
	w := &wire.ConfigChange{Epoch: ch.Epoch}
	switch ch.Kind {
	case AddReplica:
		w.Change = &wire.ConfigChange_AddReplica{AddReplica: memberRecord(ch.Member)}
	case RemoveReplica:
		w.Change = &wire.ConfigChange_RemoveReplica{RemoveReplica: ch.Member.Index}
	case RotateKey:
		w.Change = &wire.ConfigChange_RotateKey{RotateKey: &wire.RotateKey{Index: ch.Member.Index, PublicKey: ch.Member.PublicKey}}
	case SetAdmins:
		sa := &wire.SetAdmins{Threshold: uint32(ch.AdminThreshold)}
		for _, a := range ch.Admins {
			sa.Admins = append(sa.Admins, a)
		}
		w.Change = &wire.ConfigChange_SetAdmins{SetAdmins: sa}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a change: %v", err)) // plain messages always encode
	}
	return b
}

// DecodeChange parses an encoded Change.
func DecodeChange(b []byte) (Change, error) {
	var w wire.ConfigChange
	if err := proto.Unmarshal(b, &w); err != nil {
		return Change{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ch := Change{Epoch: w.Epoch}
	switch c := w.Change.(type) {
	case *wire.ConfigChange_AddReplica:
		ch.Kind, ch.Member = AddReplica, memberOf(c.AddReplica)
	case *wire.ConfigChange_RemoveReplica:
		ch.Kind, ch.Member.Index = RemoveReplica, c.RemoveReplica
	case *wire.ConfigChange_RotateKey:
		ch.Kind = RotateKey
		ch.Member = Member{Index: c.RotateKey.GetIndex(), PublicKey: slices.Clone(c.RotateKey.GetPublicKey())}
	case *wire.ConfigChange_SetAdmins:
		if len(c.SetAdmins.GetAdmins()) > MaxAdmins {
			return Change{}, fmt.Errorf("%w: %d admins", ErrMalformed, len(c.SetAdmins.GetAdmins()))
		}
		ch.Kind, ch.AdminThreshold = SetAdmins, int(c.SetAdmins.GetThreshold())
		for _, a := range c.SetAdmins.GetAdmins() {
			ch.Admins = append(ch.Admins, ed25519.PublicKey(slices.Clone(a)))
		}
	default:
		return Change{}, fmt.Errorf("%w: no change", ErrMalformed)
	}
	return ch, nil
}

// String describes the change for logs and answers.
func (ch Change) String() string {
	switch ch.Kind {
	case AddReplica:
		return fmt.Sprintf("add replica %d (%s) in epoch %d", ch.Member.Index, ch.Member.Address, ch.Epoch)
	case RemoveReplica, RotateKey:
		return fmt.Sprintf("%s %d in epoch %d", ch.Kind, ch.Member.Index, ch.Epoch)
	}
	return fmt.Sprintf("%s (%d of %d) in epoch %d", ch.Kind, ch.AdminThreshold, len(ch.Admins), ch.Epoch)
}

// Sign returns admin's signature over the encoded change in cluster
// clusterID.
func Sign(clusterID string, encodedChange []byte, admin ed25519.PrivateKey) AdminSignature {
	return AdminSignature{
		PublicKey: admin.Public().(ed25519.PublicKey),
		Signature: crypto.NewSigner(admin, clusterID).Sign(crypto.DomainConfigChange, encodedChange),
	}
}

// Encode returns the SignedChange's encoding (wire.SignedConfigChange), the
// bytes of a request's config_change.
func (sc SignedChange) Encode() []byte {
	w := &wire.SignedConfigChange{Change: sc.Change}
	for _, s := range sc.Signatures {
		w.Signatures = append(w.Signatures, &wire.AdminSignature{PublicKey: s.PublicKey, Signature: s.Signature})
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a signed change: %v", err)) // plain messages always encode
	}
	return b
}

// DecodeSignedChange parses a request's config_change, bounded by
// MaxEncodedChange.
func DecodeSignedChange(b []byte) (SignedChange, error) {
	if len(b) > MaxEncodedChange {
		return SignedChange{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrMalformed, len(b), MaxEncodedChange)
	}
	var w wire.SignedConfigChange
	if err := proto.Unmarshal(b, &w); err != nil {
		return SignedChange{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(w.Signatures) > MaxAdmins {
		return SignedChange{}, fmt.Errorf("%w: %d signatures", ErrMalformed, len(w.Signatures))
	}
	sc := SignedChange{Change: w.Change}
	for _, s := range w.Signatures {
		sc.Signatures = append(sc.Signatures, AdminSignature{PublicKey: s.PublicKey, Signature: s.Signature})
	}
	return sc, nil
}

// Approve checks that sc carries valid signatures of at least
// AdminThreshold distinct administrators of c, and returns the decoded
// change. It does not check the change against c (Apply does).
func (c Config) Approve(clusterID string, sc SignedChange) (Change, error) {
	ch, err := DecodeChange(sc.Change)
	if err != nil {
		return Change{}, err
	}
	if ch.Epoch != c.Epoch {
		return Change{}, fmt.Errorf("%w: made for epoch %d, the current epoch is %d", ErrWrongEpoch, ch.Epoch, c.Epoch)
	}
	if len(c.Admins) == 0 {
		return Change{}, fmt.Errorf("%w: the configuration names no administrators", ErrBadSignatures)
	}
	signed := make([]bool, len(c.Admins))
	count := 0
	for _, s := range sc.Signatures {
		i := slices.IndexFunc(c.Admins, func(a ed25519.PublicKey) bool { return a.Equal(s.PublicKey) })
		if i < 0 || signed[i] {
			continue // not an administrator, or counted already
		}
		if !crypto.Verify(c.Admins[i], clusterID, crypto.DomainConfigChange, sc.Change, s.Signature) {
			return Change{}, fmt.Errorf("%w: administrator %x's signature is invalid", ErrBadSignatures, []byte(c.Admins[i][:8]))
		}
		signed[i] = true
		count++
	}
	if count < c.AdminThreshold {
		return Change{}, fmt.Errorf("%w: %d of the %d administrator signatures needed", ErrBadSignatures, count, c.AdminThreshold)
	}
	return ch, nil
}

// Apply checks sc (Approve) and the change it carries against c and rules,
// and returns the next epoch's configuration. c is not modified. An error
// wraps ErrMalformed, ErrWrongEpoch, ErrBadSignatures or ErrRefused and
// says why.
func (c Config) Apply(clusterID string, sc SignedChange, rules Rules) (Config, Change, error) {
	ch, err := c.Approve(clusterID, sc)
	if err != nil {
		return Config{}, Change{}, err
	}
	next, err := c.Next(ch, rules)
	return next, ch, err
}

// Next returns the configuration ch produces from c, without checking
// signatures: the next epoch, with the change made, or an error wrapping
// ErrRefused (or ErrWrongEpoch) that says why the change is invalid or
// unsafe.
func (c Config) Next(ch Change, rules Rules) (Config, error) {
	if ch.Epoch != c.Epoch {
		return Config{}, fmt.Errorf("%w: made for epoch %d, the current epoch is %d", ErrWrongEpoch, ch.Epoch, c.Epoch)
	}
	next := c.Clone()
	next.Epoch = c.Epoch + 1
	switch ch.Kind {
	case AddReplica:
		if err := next.add(ch.Member); err != nil {
			return Config{}, err
		}
	case RemoveReplica:
		pos := next.Position(ch.Member.Index)
		if pos < 0 {
			return Config{}, fmt.Errorf("%w: replica %d is not a member", ErrRefused, ch.Member.Index)
		}
		if len(next.Members)-1 < max(rules.MinMembers, 1) {
			return Config{}, fmt.Errorf("%w: removing replica %d would leave %d members, fewer than %d", ErrRefused, ch.Member.Index, len(next.Members)-1, max(rules.MinMembers, 1))
		}
		if len(next.Retired) >= MaxRetired {
			return Config{}, fmt.Errorf("%w: %d replicas were removed already (at most %d)", ErrRefused, len(next.Retired), MaxRetired)
		}
		next.Members = slices.Delete(next.Members, pos, pos+1)
		at, _ := slices.BinarySearch(next.Retired, ch.Member.Index)
		next.Retired = slices.Insert(next.Retired, at, ch.Member.Index)
	case RotateKey:
		pos := next.Position(ch.Member.Index)
		if pos < 0 {
			return Config{}, fmt.Errorf("%w: replica %d is not a member", ErrRefused, ch.Member.Index)
		}
		if len(ch.Member.PublicKey) != ed25519.PublicKeySize {
			return Config{}, fmt.Errorf("%w: a new key of %d bytes", ErrRefused, len(ch.Member.PublicKey))
		}
		if j := next.keyHolder(ch.Member.PublicKey); j >= 0 {
			return Config{}, fmt.Errorf("%w: replica %d already holds that key", ErrRefused, next.Members[j].Index)
		}
		next.Members[pos].PublicKey = slices.Clone(ch.Member.PublicKey)
	case SetAdmins:
		if err := checkAdmins(ch.Admins, ch.AdminThreshold); err != nil {
			return Config{}, fmt.Errorf("%w: %v", ErrRefused, err)
		}
		if len(ch.Admins) == 0 {
			return Config{}, fmt.Errorf("%w: no administrators would be left to change the configuration", ErrRefused)
		}
		next.Admins, next.AdminThreshold = slices.Clone(ch.Admins), ch.AdminThreshold
	default:
		return Config{}, fmt.Errorf("%w: unknown kind of change %d", ErrRefused, ch.Kind)
	}
	if err := next.Check(); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return next, nil
}

func (c *Config) add(m Member) error {
	if err := checkMember(m); err != nil {
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	if c.Position(m.Index) >= 0 {
		return fmt.Errorf("%w: replica %d is a member already", ErrRefused, m.Index)
	}
	if c.IsRetired(m.Index) {
		return fmt.Errorf("%w: index %d belonged to a removed replica and is never used again", ErrRefused, m.Index)
	}
	if j := c.keyHolder(m.PublicKey); j >= 0 {
		return fmt.Errorf("%w: replica %d already holds that key", ErrRefused, c.Members[j].Index)
	}
	if len(c.Members) >= MaxMembers {
		return fmt.Errorf("%w: %d members already (at most %d)", ErrRefused, len(c.Members), MaxMembers)
	}
	pos, _ := slices.BinarySearchFunc(c.Members, m.Index, func(x Member, idx uint32) int { return int(int64(x.Index) - int64(idx)) })
	c.Members = slices.Insert(c.Members, pos, Member{Index: m.Index, PublicKey: slices.Clone(m.PublicKey), Address: m.Address})
	return nil
}
