package membership

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// Bounds on what a configuration may hold, so a decoded one is bounded in
// bytes before anything else looks at it.
const (
	// MaxMembers is the most replicas one configuration may have.
	MaxMembers = 256
	// MaxAdmins is the most administrator keys one configuration may name.
	MaxAdmins = 64
	// MaxAddressBytes bounds one member's address.
	MaxAddressBytes = 512
	// MaxRetired bounds Retired: the removals one cluster may make.
	MaxRetired = 4096
	// MaxEncodedConfig bounds an encoded Config.
	MaxEncodedConfig = 256 << 10
)

// Member is one replica of a configuration.
type Member struct {
	// Index names the replica for good: it is its home's index, and a
	// removed index is never given to another replica.
	Index uint32
	// PublicKey is the replica's Ed25519 key; its libp2p identity derives
	// from it.
	PublicKey ed25519.PublicKey
	// Address is the replica's libp2p multiaddr.
	Address string
}

// Config is the configuration of one epoch.
type Config struct {
	// Epoch counts the changes applied since the cluster file's
	// configuration (epoch 0).
	Epoch uint64
	// Members are the replicas, in ascending Index order.
	Members []Member
	// Admins are the administrators' Ed25519 keys; AdminThreshold of them
	// must sign a change. No admins: the configuration cannot change.
	Admins         []ed25519.PublicKey
	AdminThreshold int
	// Retired lists the indices of removed members in ascending order: an
	// index is never given to another replica, so a removed replica's
	// index (and anything it signed) never comes back under another key.
	Retired []uint32
}

// Errors Check and Decode wrap.
var (
	// ErrInvalidConfig: a configuration breaks the rules of Check.
	ErrInvalidConfig = errors.New("membership: invalid configuration")
)

// Check reports whether c is well formed: at least one member, members in
// ascending index order and none retired, keys of 32 bytes and unique,
// addresses that parse as multiaddrs, unique admin keys, and a threshold
// in [1, len(Admins)] (or 0 with no admins).
func (c Config) Check() error {
	if len(c.Members) == 0 || len(c.Members) > MaxMembers {
		return fmt.Errorf("%w: %d members (want 1 to %d)", ErrInvalidConfig, len(c.Members), MaxMembers)
	}
	for i, m := range c.Members {
		if err := checkMember(m); err != nil {
			return err
		}
		if i > 0 && m.Index <= c.Members[i-1].Index {
			return fmt.Errorf("%w: member indices not ascending at %d", ErrInvalidConfig, m.Index)
		}
		if c.IsRetired(m.Index) {
			return fmt.Errorf("%w: member index %d is retired", ErrInvalidConfig, m.Index)
		}
		if j := c.keyHolder(m.PublicKey); j != i {
			return fmt.Errorf("%w: members %d and %d share a key", ErrInvalidConfig, c.Members[j].Index, m.Index)
		}
	}
	if len(c.Retired) > MaxRetired {
		return fmt.Errorf("%w: %d retired indices (at most %d)", ErrInvalidConfig, len(c.Retired), MaxRetired)
	}
	for i := 1; i < len(c.Retired); i++ {
		if c.Retired[i] <= c.Retired[i-1] {
			return fmt.Errorf("%w: retired indices not ascending at %d", ErrInvalidConfig, c.Retired[i])
		}
	}
	return checkAdmins(c.Admins, c.AdminThreshold)
}

// IsRetired reports whether index belonged to a removed member.
func (c Config) IsRetired(index uint32) bool {
	_, found := slices.BinarySearch(c.Retired, index)
	return found
}

func checkMember(m Member) error {
	if len(m.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: member %d: public key of %d bytes", ErrInvalidConfig, m.Index, len(m.PublicKey))
	}
	if m.Address == "" || len(m.Address) > MaxAddressBytes {
		return fmt.Errorf("%w: member %d: address of %d bytes", ErrInvalidConfig, m.Index, len(m.Address))
	}
	if _, err := multiaddr.NewMultiaddr(m.Address); err != nil {
		return fmt.Errorf("%w: member %d: address %q: %v", ErrInvalidConfig, m.Index, m.Address, err)
	}
	return nil
}

func checkAdmins(admins []ed25519.PublicKey, threshold int) error {
	if len(admins) > MaxAdmins {
		return fmt.Errorf("%w: %d admins (at most %d)", ErrInvalidConfig, len(admins), MaxAdmins)
	}
	for i, a := range admins {
		if len(a) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: admin key %d of %d bytes", ErrInvalidConfig, i, len(a))
		}
		for _, b := range admins[:i] {
			if a.Equal(b) {
				return fmt.Errorf("%w: admin key %x listed twice", ErrInvalidConfig, []byte(a))
			}
		}
	}
	if (len(admins) == 0 && threshold != 0) || (len(admins) > 0 && (threshold < 1 || threshold > len(admins))) {
		return fmt.Errorf("%w: admin threshold %d of %d admins", ErrInvalidConfig, threshold, len(admins))
	}
	return nil
}

// keyHolder returns the position of the member holding key, or -1.
func (c Config) keyHolder(key ed25519.PublicKey) int {
	return slices.IndexFunc(c.Members, func(m Member) bool { return bytes.Equal(m.PublicKey, key) })
}

// Position returns the position of the member with index in Members, or
// -1 when no member has it.
func (c Config) Position(index uint32) int {
	i, ok := slices.BinarySearchFunc(c.Members, index, func(m Member, idx uint32) int {
		switch {
		case m.Index < idx:
			return -1
		case m.Index > idx:
			return 1
		}
		return 0
	})
	if !ok {
		return -1
	}
	return i
}

// Member returns the member with index, if there is one.
func (c Config) Member(index uint32) (Member, bool) {
	if i := c.Position(index); i >= 0 {
		return c.Members[i], true
	}
	return Member{}, false
}

// MemberByKey returns the member holding key, if there is one.
func (c Config) MemberByKey(key ed25519.PublicKey) (Member, bool) {
	if i := c.keyHolder(key); i >= 0 {
		return c.Members[i], true
	}
	return Member{}, false
}

// Indices returns the members' indices in ascending order.
func (c Config) Indices() []uint32 {
	out := make([]uint32, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Index
	}
	return out
}

// FaultTolerance is the number of Byzantine members the configuration
// tolerates: f = floor((n-1)/3).
func (c Config) FaultTolerance() int { return (len(c.Members) - 1) / 3 }

// Quorum is the size of a Byzantine quorum of the members: any two
// quorums intersect in at least f+1 members (2f+1 when n = 3f+1).
func (c Config) Quorum() int {
	n := len(c.Members)
	return (n + c.FaultTolerance() + 2) / 2
}

// Clone returns a copy of c that shares no slice with it.
func (c Config) Clone() Config {
	out := c
	out.Members = make([]Member, len(c.Members))
	for i, m := range c.Members {
		out.Members[i] = Member{Index: m.Index, PublicKey: slices.Clone(m.PublicKey), Address: m.Address}
	}
	out.Retired = slices.Clone(c.Retired)
	out.Admins = make([]ed25519.PublicKey, len(c.Admins))
	for i, a := range c.Admins {
		out.Admins[i] = slices.Clone(a)
	}
	return out
}

// Encode returns c's deterministic protobuf encoding (wire.MembershipConfig).
func (c Config) Encode() []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.wire())
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a config: %v", err)) // plain messages always encode
	}
	return b
}

// Digest is SHA-256 of Encode: what votes and certificates sign.
func (c Config) Digest() [32]byte { return sha256.Sum256(c.Encode()) }

func (c Config) wire() *wire.MembershipConfig {
	w := &wire.MembershipConfig{Epoch: c.Epoch, AdminThreshold: uint32(c.AdminThreshold), Retired: c.Retired}
	for _, m := range c.Members {
		w.Members = append(w.Members, memberRecord(m))
	}
	for _, a := range c.Admins {
		w.Admins = append(w.Admins, a)
	}
	return w
}

func memberRecord(m Member) *wire.MemberRecord {
	return &wire.MemberRecord{Index: m.Index, PublicKey: m.PublicKey, Address: m.Address}
}

func memberOf(r *wire.MemberRecord) Member {
	return Member{Index: r.GetIndex(), PublicKey: ed25519.PublicKey(slices.Clone(r.GetPublicKey())), Address: r.GetAddress()}
}

// Decode parses an encoded Config and checks it (Check).
func Decode(b []byte) (Config, error) {
	if len(b) > MaxEncodedConfig {
		return Config{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrInvalidConfig, len(b), MaxEncodedConfig)
	}
	var w wire.MembershipConfig
	if err := proto.Unmarshal(b, &w); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if len(w.Members) > MaxMembers || len(w.Admins) > MaxAdmins || len(w.Retired) > MaxRetired {
		return Config{}, fmt.Errorf("%w: %d members, %d admins", ErrInvalidConfig, len(w.Members), len(w.Admins))
	}
	c := Config{Epoch: w.Epoch, AdminThreshold: int(w.AdminThreshold), Retired: slices.Clone(w.Retired)}
	for _, r := range w.Members {
		c.Members = append(c.Members, memberOf(r))
	}
	for _, a := range w.Admins {
		c.Admins = append(c.Admins, ed25519.PublicKey(slices.Clone(a)))
	}
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	return c, nil
}
