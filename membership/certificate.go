package membership

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// MaxHistory bounds the certificates of one ConfigHistory, and
// MaxEncodedHistory its encoding.
const (
	MaxHistory        = 1024
	MaxEncodedHistory = 16 << 20
)

// ErrBadCertificate: a configuration certificate or history does not prove
// what it claims.
var ErrBadCertificate = errors.New("membership: invalid configuration certificate")

// Vote is a member's statement that Config (by digest) holds from
// Sequence on, and that the state after executing Sequence-1 (the previous
// epoch's last stable checkpoint) has digest StateDigest; From is the
// signer's index in the previous configuration.
type Vote struct {
	Epoch        uint64
	ConfigDigest [32]byte
	Sequence     uint64
	From         uint32
	StateDigest  [32]byte
}

// Encode returns the vote's encoding (wire.ConfigVote): what its signer signs.
func (v Vote) Encode() []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&wire.ConfigVote{
		Epoch: v.Epoch, ConfigDigest: v.ConfigDigest[:], Sequence: v.Sequence, From: v.From, StateDigest: v.StateDigest[:],
	})
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a vote: %v", err)) // plain messages always encode
	}
	return b
}

// SignVote returns the signed vote of the member holding key.
func SignVote(clusterID string, v Vote, key ed25519.PrivateKey) *wire.Signed {
	payload := v.Encode()
	return &wire.Signed{Payload: payload, Signature: crypto.NewSigner(key, clusterID).Sign(crypto.DomainConfigVote, payload)}
}

// Certificate proves one change: the administrators' signed change, the
// configuration it produced (epoch = previous + 1), the sequence from which
// it holds, the state digest at Sequence-1 (the votes carry it), and a
// quorum of the previous configuration's members' votes.
type Certificate struct {
	Change      SignedChange
	Config      Config
	Sequence    uint64
	StateDigest [32]byte
	Votes       []*wire.Signed
}

// Wire returns the certificate's wire form.
func (c Certificate) Wire() *wire.ConfigCertificate { return c.wire() }

// CertificateFromWire decodes a certificate's parts (bounded as in a
// history); it checks that they decode, not that they prove anything
// (Verify does).
func CertificateFromWire(c *wire.ConfigCertificate) (Certificate, error) {
	if len(c.GetVotes()) > MaxMembers {
		return Certificate{}, fmt.Errorf("%w: %d votes", ErrBadCertificate, len(c.GetVotes()))
	}
	sc, err := DecodeSignedChange(c.GetChange())
	if err != nil {
		return Certificate{}, fmt.Errorf("%w: %w", ErrBadCertificate, err)
	}
	cfg, err := Decode(c.GetConfig())
	if err != nil {
		return Certificate{}, fmt.Errorf("%w: %w", ErrBadCertificate, err)
	}
	return Certificate{Change: sc, Config: cfg, Sequence: c.GetSequence(),
		StateDigest: votedStateDigest(c.GetVotes()), Votes: c.GetVotes()}, nil
}

func (c Certificate) wire() *wire.ConfigCertificate {
	return &wire.ConfigCertificate{Change: c.Change.Encode(), Config: c.Config.Encode(), Sequence: c.Sequence, Votes: c.Votes}
}

// Verify checks that cert proves a change of prev in cluster clusterID:
// the change is approved by prev's administrators and produces exactly
// cert.Config under rules, and distinct members of prev making a quorum
// (prev.Quorum) signed votes for that configuration, sequence and state
// digest. It returns the proven configuration.
func (cert Certificate) Verify(clusterID string, prev Config, rules Rules) (Config, error) {
	next, _, err := prev.Apply(clusterID, cert.Change, rules)
	if err != nil {
		return Config{}, fmt.Errorf("%w: epoch %d: %w", ErrBadCertificate, prev.Epoch+1, err)
	}
	if !bytes.Equal(next.Encode(), cert.Config.Encode()) {
		return Config{}, fmt.Errorf("%w: epoch %d: the configuration is not what the change produces", ErrBadCertificate, next.Epoch)
	}
	digest := next.Digest()
	voted := make(map[uint32]bool, len(cert.Votes))
	for _, s := range cert.Votes {
		var v wire.ConfigVote
		if err := proto.Unmarshal(s.GetPayload(), &v); err != nil {
			return Config{}, fmt.Errorf("%w: epoch %d: a vote: %v", ErrBadCertificate, next.Epoch, err)
		}
		m, ok := prev.Member(v.From)
		if !ok || voted[v.From] {
			continue // not a member of the previous epoch, or counted already
		}
		if v.Epoch != next.Epoch || !bytes.Equal(v.ConfigDigest, digest[:]) || v.Sequence != cert.Sequence ||
			!bytes.Equal(v.StateDigest, cert.StateDigest[:]) {
			return Config{}, fmt.Errorf("%w: epoch %d: replica %d voted for something else", ErrBadCertificate, next.Epoch, v.From)
		}
		if !crypto.Verify(m.PublicKey, clusterID, crypto.DomainConfigVote, s.GetPayload(), s.GetSignature()) {
			return Config{}, fmt.Errorf("%w: epoch %d: replica %d's vote has a bad signature", ErrBadCertificate, next.Epoch, v.From)
		}
		voted[v.From] = true
	}
	if len(voted) < prev.Quorum() {
		return Config{}, fmt.Errorf("%w: epoch %d: %d votes of the %d needed", ErrBadCertificate, next.Epoch, len(voted), prev.Quorum())
	}
	return next, nil
}

// History is the chain of certificates from epoch 0: Certificates[i]
// proves epoch i+1.
type History struct {
	Certificates []Certificate
}

// Encode returns the history's encoding (wire.ConfigHistory), with current
// set to the configuration the last certificate proves (or genesis).
func (h History) Encode(genesis Config) []byte {
	w := &wire.ConfigHistory{Current: genesis.Encode()}
	for _, c := range h.Certificates {
		w.Certificates = append(w.Certificates, c.wire())
		w.Current = c.Config.Encode()
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a history: %v", err)) // plain messages always encode
	}
	return b
}

// DecodeHistory parses an encoded history, bounded by MaxEncodedHistory
// and MaxHistory. It checks that each part decodes, not that it proves
// anything (VerifyHistory does).
func DecodeHistory(b []byte) (History, error) {
	if len(b) > MaxEncodedHistory {
		return History{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrBadCertificate, len(b), MaxEncodedHistory)
	}
	var w wire.ConfigHistory
	if err := proto.Unmarshal(b, &w); err != nil {
		return History{}, fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	if len(w.Certificates) > MaxHistory {
		return History{}, fmt.Errorf("%w: %d certificates (at most %d)", ErrBadCertificate, len(w.Certificates), MaxHistory)
	}
	var h History
	for i, c := range w.Certificates {
		cert, err := CertificateFromWire(c)
		if err != nil {
			return History{}, fmt.Errorf("certificate %d: %w", i, err)
		}
		h.Certificates = append(h.Certificates, cert)
	}
	return h, nil
}

// VerifyHistory checks every certificate of h in turn from genesis (epoch
// 0) and returns the last configuration proven, with the sequence from
// which it holds (0 for genesis). Certificates must prove consecutive
// epochs at non-decreasing sequences.
func VerifyHistory(clusterID string, genesis Config, h History, rules Rules) (Config, uint64, error) {
	spans, err := VerifyHistorySpans(clusterID, genesis, h, rules)
	if err != nil {
		return Config{}, 0, err
	}
	last := spans[len(spans)-1]
	return last.Config, last.From, nil
}

// Span is one epoch of a verified history: its configuration, which
// orders the sequences from From on (the certificate's Sequence, one
// above the checkpoint that ended the previous epoch; 0 for genesis).
type Span struct {
	Config Config
	From   uint64
}

// VerifyHistorySpans is VerifyHistory returning every epoch it proved,
// genesis first: spans[e] is epoch e. Epoch e orders the sequences in
// [spans[e].From, spans[e+1].From); the last epoch's end is not known
// from h.
func VerifyHistorySpans(clusterID string, genesis Config, h History, rules Rules) ([]Span, error) {
	spans := make([]Span, 1, len(h.Certificates)+1)
	spans[0] = Span{Config: genesis}
	for _, cert := range h.Certificates {
		cur := spans[len(spans)-1]
		next, err := cert.Verify(clusterID, cur.Config, rules)
		if err != nil {
			return nil, err
		}
		if cert.Sequence < cur.From {
			return nil, fmt.Errorf("%w: epoch %d holds from sequence %d, before epoch %d's %d", ErrBadCertificate, next.Epoch, cert.Sequence, cur.Config.Epoch, cur.From)
		}
		spans = append(spans, Span{Config: next, From: cert.Sequence})
	}
	return spans, nil
}

// votedStateDigest returns the state digest the first decodable vote
// names (the zero digest if none does): Verify then requires every
// counted vote to name the same one.
func votedStateDigest(votes []*wire.Signed) [32]byte {
	var d [32]byte
	for _, s := range votes {
		var v wire.ConfigVote
		if proto.Unmarshal(s.GetPayload(), &v) == nil && len(v.StateDigest) == len(d) {
			copy(d[:], v.StateDigest)
			return d
		}
	}
	return d
}
