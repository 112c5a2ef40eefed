package checkpoint

import (
	"errors"
	"fmt"
)

// ErrBadCertificate is returned for a certificate that does not prove a
// stable checkpoint.
var ErrBadCertificate = errors.New("checkpoint: bad certificate")

// VerifyCertificate checks that votes (whose signatures the caller already
// verified) prove a stable checkpoint among n replicas: at least quorum
// votes from distinct replicas inside the cluster, all for the same
// sequence, a multiple of interval, and the same state digest. It returns
// the certificate with one vote per replica, ordered by replica.
func VerifyCertificate(votes []Vote, n, quorum int, interval uint64) (Certificate, error) {
	if len(votes) == 0 {
		return Certificate{}, fmt.Errorf("%w: no votes", ErrBadCertificate)
	}
	if len(votes) > n {
		return Certificate{}, fmt.Errorf("%w: %d votes from %d replicas", ErrBadCertificate, len(votes), n)
	}
	first := votes[0]
	if first.Sequence == 0 || interval == 0 || first.Sequence%interval != 0 {
		return Certificate{}, fmt.Errorf("%w: sequence %d is not a checkpoint", ErrBadCertificate, first.Sequence)
	}
	seen := make(map[uint32]bool, len(votes))
	for _, v := range votes {
		switch {
		case int64(v.Replica) >= int64(n):
			return Certificate{}, fmt.Errorf("%w: vote from replica %d outside the cluster", ErrBadCertificate, v.Replica)
		case seen[v.Replica]:
			return Certificate{}, fmt.Errorf("%w: two votes from replica %d", ErrBadCertificate, v.Replica)
		case v.Sequence != first.Sequence || v.StateDigest != first.StateDigest:
			return Certificate{}, fmt.Errorf("%w: votes disagree", ErrBadCertificate)
		}
		seen[v.Replica] = true
	}
	if len(votes) < quorum {
		return Certificate{}, fmt.Errorf("%w: %d votes, quorum is %d", ErrBadCertificate, len(votes), quorum)
	}
	proof := append([]Vote(nil), votes...)
	sortVotes(proof)
	return Certificate{Sequence: first.Sequence, StateDigest: first.StateDigest, Proof: proof}, nil
}
