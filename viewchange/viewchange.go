package viewchange

import (
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/wire"
)

// Sentinel errors. Every error returned by this package wraps exactly one
// of them (CheckNewView may wrap ErrInvalidNewView together with the
// ErrInvalidViewChange that caused it), with detail.
var (
	// ErrInvalidCertificate: a prepared certificate does not prove that
	// a quorum prepared its (view, sequence, digest).
	ErrInvalidCertificate = errors.New("viewchange: invalid prepared certificate")
	// ErrInvalidViewChange: a VIEW-CHANGE, or a set of them, is malformed.
	ErrInvalidViewChange = errors.New("viewchange: invalid view change")
	// ErrInvalidNewView: a NEW-VIEW's pre-prepares are not the ones its
	// VIEW-CHANGEs require.
	ErrInvalidNewView = errors.New("viewchange: invalid new view")
	// ErrInvalidConfig: the Config itself is unusable; not the fault of
	// any sender.
	ErrInvalidConfig = errors.New("viewchange: invalid config")
)

// MaxWindowSize bounds Config.WindowSize. A decision holds one proposal per
// sequence in a window, so the bound keeps its size reasonable whatever the
// view changes claim.
const MaxWindowSize = 1 << 20

// Config is the part of the replica configuration the view change needs.
type Config struct {
	// N is the number of replicas.
	N int
	// Quorum is the quorum size, 2f+1 for n = 3f+1 (protocol.Quorum(n)).
	Quorum int
	// CheckpointInterval is the checkpoint period K.
	CheckpointInterval uint64
	// WindowSize is L: prepared certificates in a VIEW-CHANGE must lie in
	// (stable, stable+L].
	WindowSize uint64
	// NullDigest is the digest of the empty batch (crypto.BatchDigest(nil)).
	NullDigest [32]byte
	// Epoch is the configuration epoch: the primary of view v is
	// (v + Epoch) mod N (PrimaryIn).
	Epoch uint64
	// Base is the sequence the epoch starts after: a VIEW-CHANGE whose
	// stable checkpoint carries no proof (sequence 0 or Base) stands for
	// Base, which the previous epoch certified.
	Base uint64
}

// primary returns the primary of view in c's epoch.
func (c Config) primary(view uint64) uint32 { return PrimaryIn(c.Epoch, view, c.N) }

// Primary returns the primary of view among n replicas in epoch 0: view
// mod n, the same as protocol.Primary. It returns 0 when n is not positive.
func Primary(view uint64, n int) uint32 { return PrimaryIn(0, view, n) }

// PrimaryIn returns the primary of view among n replicas in configuration
// epoch: (view + epoch) mod n, so the rotation starts elsewhere in each
// epoch. It returns 0 when n is not positive.
func PrimaryIn(epoch, view uint64, n int) uint32 {
	if n <= 0 {
		return 0
	}
	return uint32((view%uint64(n) + epoch%uint64(n)) % uint64(n))
}

// PrePrepare is a decoded PRE-PREPARE(view, sequence, digest) signed by From.
type PrePrepare struct {
	From     uint32
	View     uint64
	Sequence uint64
	Digest   [32]byte
	Signed   *wire.Signed
}

// Prepare is a decoded PREPARE(view, sequence, digest) signed by From.
type Prepare struct {
	From     uint32
	View     uint64
	Sequence uint64
	Digest   [32]byte
	Signed   *wire.Signed
}

// PreparedCertificate proves that (view, sequence, digest) prepared: the
// PRE-PREPARE of that view's primary and Quorum-1 matching PREPAREs from
// distinct backups.
type PreparedCertificate struct {
	PrePrepare PrePrepare
	Prepares   []Prepare
}

// ViewChange is a decoded VIEW-CHANGE sent by From to move to NewView.
type ViewChange struct {
	From    uint32
	NewView uint64
	// Stable is the sender's stable checkpoint: Sequence 0 and no proof
	// when it has none.
	Stable checkpoint.Certificate
	// Prepared holds, for sequences above Stable, the certificate of the
	// highest view in which the sender prepared them.
	Prepared []PreparedCertificate
	// Signed is the VIEW-CHANGE as signed by From (kept for NEW-VIEW).
	Signed *wire.Signed
}

// Proposal is what the new primary must pre-prepare at Sequence. Null is
// true exactly when Digest is the null digest (a null request, or a
// prepared empty batch).
type Proposal struct {
	Sequence uint64
	Digest   [32]byte
	Null     bool
}

// Decision is what a set of VIEW-CHANGEs determines for the new view.
type Decision struct {
	View uint64
	// Stable is the highest stable checkpoint among the view changes
	// (min-s); the zero Certificate when that is sequence 0.
	Stable checkpoint.Certificate
	// Proposals has one entry per sequence in (Stable.Sequence, max-s],
	// in increasing order.
	Proposals []Proposal
}

func (c Config) validate() error {
	switch {
	case c.N <= 0 || int64(c.N) > 1<<32:
		return fmt.Errorf("%w: %d replicas", ErrInvalidConfig, c.N)
	case c.Quorum <= 0 || c.Quorum > c.N:
		return fmt.Errorf("%w: quorum %d for %d replicas", ErrInvalidConfig, c.Quorum, c.N)
	case c.CheckpointInterval == 0:
		return fmt.Errorf("%w: checkpoint interval 0", ErrInvalidConfig)
	case c.WindowSize == 0 || c.WindowSize > MaxWindowSize:
		return fmt.Errorf("%w: window size %d outside [1, %d]", ErrInvalidConfig, c.WindowSize, MaxWindowSize)
	}
	return nil
}

// member reports whether replica is in [0, N).
func (c Config) member(replica uint32) bool { return int64(replica) < int64(c.N) }
