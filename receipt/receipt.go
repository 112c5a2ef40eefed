package receipt

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/wire"
)

// What Verify finds wrong with a receipt. errors.Is tells them apart.
var (
	// ErrMalformed: a field does not decode (hex, lengths) or is missing.
	ErrMalformed = errors.New("receipt: malformed")
	// ErrWrongCluster: the receipt names another cluster than the
	// cluster file.
	ErrWrongCluster = errors.New("receipt: wrong cluster")
	// ErrTamperedResult: "result" is not the printed form of the raw
	// result (FormatResult).
	ErrTamperedResult = errors.New("receipt: tampered result")
	// ErrUnknownKey: a signature names a replica index the cluster does not
	// have, or a public key that is not that replica's.
	ErrUnknownKey = errors.New("receipt: unknown key")
	// ErrBadSignature: a signature does not verify over the statement.
	ErrBadSignature = errors.New("receipt: bad signature")
	// ErrTooFewSigners: fewer than f+1 distinct replicas of the cluster
	// signed the statement.
	ErrTooFewSigners = errors.New("receipt: too few signers")
	// ErrWrongEpoch: the receipt's configuration history does not verify
	// from the cluster file's genesis, does not reach the receipt's
	// epoch, or shows the sequence outside that epoch.
	ErrWrongEpoch = errors.New("receipt: wrong epoch")
)

// Version is the receipt file format's version.
const Version = 1

// Receipt is a verifiable receipt: the JSON file `pbftnode client
// --receipt` writes and the gateway returns. Byte strings are lowercase
// hex. It shows that f+1 replicas of cluster ClusterID (so at least one
// correct one) executed the request (ClientID, RequestNumber) with the
// result RawResult in the batch at Sequence, leaving the state whose
// digest is StateDigest. See docs/receipts.md.
type Receipt struct {
	Version   int    `json:"version"`
	ClusterID string `json:"cluster_id"`
	Sequence  uint64 `json:"sequence"`
	// Epoch is the configuration epoch that executed the batch (0, left
	// out: the genesis, the cluster file's replicas). Above 0, History
	// proves who its members were.
	Epoch uint64 `json:"epoch,omitempty"`
	// History is the hex encoding of the configuration certificates from
	// epoch 1 on (a wire.ConfigHistory, as a config_query answers), at
	// least up to Epoch: the chain of quorum-signed changes that makes the
	// receipt checkable with the cluster file alone.
	History string `json:"history,omitempty"`
	// StateDigest and ResultsRoot are the signed statement's digests.
	StateDigest   string `json:"state_digest"`
	ResultsRoot   string `json:"results_root"`
	ClientID      string `json:"client_id"`
	RequestNumber uint64 `json:"request_number"`
	// Operation is the key-value operation kind ("put", "get", "delete",
	// "cas") that decides how Result prints RawResult, or "" (any other
	// application: hex). It is not signed: see FormatResult.
	Operation string `json:"operation,omitempty"`
	// Result is FormatResult(Operation, RawResult): what the CLI prints.
	Result    string `json:"result"`
	RawResult string `json:"raw_result"`
	// LeafIndex, LeafCount and Proof place the request's leaf in the
	// results tree (Tree, VerifyProof).
	LeafIndex  uint32      `json:"leaf_index"`
	LeafCount  uint32      `json:"leaf_count"`
	Proof      []string    `json:"proof"`
	Signatures []Signature `json:"signatures"`
}

// Signature is one replica's signature over the receipt's statement.
type Signature struct {
	Replica uint32 `json:"replica"`
	// PublicKey is the replica's key (hex), for the reader; Verify
	// checks it against the cluster file, which is what counts.
	PublicKey string `json:"public_key,omitempty"`
	Signature string `json:"signature"`
}

// Statement is what a replica signs once per executed batch
// (crypto.ReceiptStatement, under the cluster's id).
type Statement struct {
	// Epoch is the configuration epoch that executed the batch.
	Epoch       uint64
	Sequence    uint64
	StateDigest crypto.Digest
	ResultsRoot crypto.Digest
}

// Payload returns the signed payload: crypto.ReceiptStatement in epoch
// 0, crypto.ReceiptEpochStatement after.
func (s Statement) Payload() []byte {
	if s.Epoch == 0 {
		return crypto.ReceiptStatement(s.Sequence, s.StateDigest, s.ResultsRoot)
	}
	return crypto.ReceiptEpochStatement(s.Epoch, s.Sequence, s.StateDigest, s.ResultsRoot)
}

// Domain returns the signature domain of the statement:
// crypto.DomainReceipt in epoch 0, crypto.DomainReceiptEpoch after.
func (s Statement) Domain() string {
	if s.Epoch == 0 {
		return crypto.DomainReceipt
	}
	return crypto.DomainReceiptEpoch
}

// OperationKind returns the key-value operation kind of op ("put", "get",
// "delete", "cas"), or "" when op is not a key-value operation (another
// application's): the Operation a receipt for op carries.
func OperationKind(op []byte) string {
	var m wire.KVOperation
	if proto.Unmarshal(op, &m) != nil {
		return ""
	}
	switch m.Op.(type) {
	case *wire.KVOperation_Put:
		return "put"
	case *wire.KVOperation_Get:
		return "get"
	case *wire.KVOperation_Delete:
		return "delete"
	case *wire.KVOperation_Cas:
		return "cas"
	}
	return ""
}

// FormatResult prints a raw result as `pbftnode client` does. For a
// key-value operation (operation "put", "get", "delete" or "cas") raw is
// a wire.KVResult: put and delete print "ok"; get prints the value or
// "(not found)"; cas prints "swapped", "not swapped (key absent)" or "not
// swapped (current value V)"; a result with an error prints "error: MSG".
// Anything else (operation "", or a raw result that is no KVResult) prints
// as "hex:" followed by the raw bytes in lowercase hex. It is a pure
// function of its arguments, so Verify recomputes it. The operation is
// not covered by the signatures (the leaf commits to the result, not the
// operation), so the printed form is only as meaningful as the operation
// name; the raw result is what the replicas signed.
func FormatResult(operation string, raw []byte) string {
	hexForm := "hex:" + hex.EncodeToString(raw)
	switch operation {
	case "put", "get", "delete", "cas":
	default:
		return hexForm
	}
	var r wire.KVResult
	if proto.Unmarshal(raw, &r) != nil {
		return hexForm
	}
	switch {
	case r.Error != "":
		return "error: " + r.Error
	case operation == "get" && !r.Ok:
		return "(not found)"
	case operation == "get":
		return string(r.Value)
	case operation == "cas" && r.Ok:
		return "swapped"
	case operation == "cas" && r.Value == nil:
		return "not swapped (key absent)"
	case operation == "cas":
		return fmt.Sprintf("not swapped (current value %s)", r.Value)
	}
	return "ok"
}

// Verify checks r against the cluster file: the cluster id, that Result
// is FormatResult of the raw result, that the leaf of (client, request
// number, raw result) is in the results tree by the proof, and that at
// least f+1 distinct members of the configuration that executed the batch
// signed the statement (each signature must name a member, match its key
// if it states one, and verify; a member counted twice counts once). That
// configuration is the cluster file's replicas in epoch 0, else the one
// r.History proves for r.Epoch from the cluster file's genesis, which must
// also place r.Sequence in that epoch. The error wraps ErrWrongCluster,
// ErrMalformed, ErrTamperedResult, ErrBadProof, ErrWrongEpoch,
// ErrUnknownKey, ErrBadSignature or ErrTooFewSigners.
func Verify(r *Receipt, cluster config.ClusterFile) error {
	_, err := Check(r, cluster)
	return err
}

// Check is Verify that also returns how many members the configuration
// that executed r's batch had (f+1 of them had to sign), so that a caller
// reporting it does not verify the history a second time.
func Check(r *Receipt, cluster config.ClusterFile) (members int, err error) {
	if r == nil {
		return 0, fmt.Errorf("%w: no receipt", ErrMalformed)
	}
	if r.ClusterID != cluster.ClusterID {
		return 0, fmt.Errorf("%w: the receipt is for cluster %q, the cluster file is %q", ErrWrongCluster, r.ClusterID, cluster.ClusterID)
	}
	d, err := decode(r)
	if err != nil {
		return 0, err
	}
	if want := FormatResult(r.Operation, d.raw); r.Result != want {
		return 0, fmt.Errorf("%w: result %q is not the signed raw result, which prints as %q", ErrTamperedResult, r.Result, want)
	}
	leaf := LeafHash(d.clientID, r.RequestNumber, d.raw)
	if err := VerifyProof(leaf, uint64(r.LeafIndex), uint64(r.LeafCount), d.proof, d.statement.ResultsRoot); err != nil {
		return 0, err
	}
	keys, err := signingKeys(r, cluster)
	if err != nil {
		return 0, err
	}
	payload, domain := d.statement.Payload(), d.statement.Domain()
	signers := make(map[uint32]bool)
	for i, s := range r.Signatures {
		key, ok := keys[s.Replica]
		if !ok {
			return 0, fmt.Errorf("%w: signature %d names replica %d, not a member in epoch %d", ErrUnknownKey, i, s.Replica, r.Epoch)
		}
		if s.PublicKey != "" {
			stated, err := hex.DecodeString(s.PublicKey)
			if err != nil || !key.Equal(ed25519.PublicKey(stated)) {
				return 0, fmt.Errorf("%w: signature %d states a key that is not replica %d's in epoch %d", ErrUnknownKey, i, s.Replica, r.Epoch)
			}
		}
		sig, err := hex.DecodeString(s.Signature)
		if err != nil || !crypto.Verify(key, cluster.ClusterID, domain, payload, sig) {
			return 0, fmt.Errorf("%w: replica %d's signature does not verify over the statement", ErrBadSignature, s.Replica)
		}
		signers[s.Replica] = true
	}
	need := config.FaultTolerance(config.ConsensusPBFT, len(keys)) + 1
	if len(signers) < need {
		return 0, fmt.Errorf("%w: %d distinct replicas signed, %d needed (f+1 of %d in epoch %d)", ErrTooFewSigners, len(signers), need, len(keys), r.Epoch)
	}
	return len(keys), nil
}

// signingKeys returns the members' keys, by index, of the configuration
// that executed r's batch: the cluster file's replicas for epoch 0
// without a history; otherwise the configuration of r's epoch as the
// history proves it from the cluster file's genesis, which must also
// place r's sequence inside that epoch (from the sequence the epoch
// began at and, when the history goes on, before the next one began).
func signingKeys(r *Receipt, cluster config.ClusterFile) (map[uint32]ed25519.PublicKey, error) {
	if r.Epoch == 0 && r.History == "" {
		replicas, err := cluster.Decode()
		if err != nil {
			return nil, fmt.Errorf("receipt: cluster file: %w", err)
		}
		keys := make(map[uint32]ed25519.PublicKey, len(replicas))
		for _, rep := range replicas {
			keys[rep.Index] = rep.PublicKey
		}
		return keys, nil
	}
	if len(r.History) > 2*membership.MaxEncodedHistory {
		return nil, fmt.Errorf("%w: history of %d hex characters", ErrMalformed, len(r.History))
	}
	encoded, err := hex.DecodeString(r.History)
	if err != nil {
		return nil, fmt.Errorf("%w: history: %w", ErrMalformed, err)
	}
	h, err := membership.DecodeHistory(encoded)
	if err != nil {
		return nil, fmt.Errorf("%w: history: %w", ErrMalformed, err)
	}
	genesis, err := cluster.Genesis()
	if err != nil {
		return nil, fmt.Errorf("receipt: cluster file: %w", err)
	}
	spans, err := membership.VerifyHistorySpans(cluster.ClusterID, genesis, h, config.MembershipRules(config.ConsensusPBFT))
	if err != nil {
		return nil, fmt.Errorf("%w: the history does not verify from the cluster file: %w", ErrWrongEpoch, err)
	}
	if r.Epoch >= uint64(len(spans)) {
		return nil, fmt.Errorf("%w: the history proves epochs up to %d, the receipt names epoch %d", ErrWrongEpoch, len(spans)-1, r.Epoch)
	}
	span := spans[r.Epoch]
	if r.Sequence < span.From {
		return nil, fmt.Errorf("%w: sequence %d is before epoch %d, which began at sequence %d", ErrWrongEpoch, r.Sequence, r.Epoch, span.From)
	}
	if r.Epoch+1 < uint64(len(spans)) && r.Sequence >= spans[r.Epoch+1].From {
		return nil, fmt.Errorf("%w: sequence %d is after epoch %d, which ended before sequence %d", ErrWrongEpoch, r.Sequence, r.Epoch, spans[r.Epoch+1].From)
	}
	keys := make(map[uint32]ed25519.PublicKey, len(span.Config.Members))
	for _, m := range span.Config.Members {
		keys[m.Index] = m.PublicKey
	}
	return keys, nil
}

// Signers returns the distinct replica indexes of r's signatures, in
// order (Verify says whether they are valid).
func (r *Receipt) Signers() []uint32 {
	var out []uint32
	for _, s := range r.Signatures {
		out = append(out, s.Replica)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// decoded is a receipt's byte fields.
type decoded struct {
	statement Statement
	clientID  []byte
	raw       []byte
	proof     []crypto.Digest
}

func decode(r *Receipt) (decoded, error) {
	var d decoded
	var err error
	d.statement.Epoch, d.statement.Sequence = r.Epoch, r.Sequence
	if d.statement.StateDigest, err = decodeDigest(r.StateDigest); err != nil {
		return d, fmt.Errorf("%w: state_digest: %w", ErrMalformed, err)
	}
	if d.statement.ResultsRoot, err = decodeDigest(r.ResultsRoot); err != nil {
		return d, fmt.Errorf("%w: results_root: %w", ErrMalformed, err)
	}
	if d.clientID, err = hex.DecodeString(r.ClientID); err != nil {
		return d, fmt.Errorf("%w: client_id: %w", ErrMalformed, err)
	}
	if d.raw, err = hex.DecodeString(r.RawResult); err != nil {
		return d, fmt.Errorf("%w: raw_result: %w", ErrMalformed, err)
	}
	if len(r.Proof) > 64 {
		return d, fmt.Errorf("%w: proof of %d entries", ErrMalformed, len(r.Proof))
	}
	for i, p := range r.Proof {
		h, err := decodeDigest(p)
		if err != nil {
			return d, fmt.Errorf("%w: proof[%d]: %w", ErrMalformed, i, err)
		}
		d.proof = append(d.proof, h)
	}
	return d, nil
}

func decodeDigest(s string) (crypto.Digest, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return crypto.Digest{}, fmt.Errorf("not hex: %w", err)
	}
	return crypto.DigestFromBytes(b)
}
