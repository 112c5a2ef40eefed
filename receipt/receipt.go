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
	Sequence    uint64
	StateDigest crypto.Digest
	ResultsRoot crypto.Digest
}

// Payload returns the signed payload (crypto.ReceiptStatement).
func (s Statement) Payload() []byte {
	return crypto.ReceiptStatement(s.Sequence, s.StateDigest, s.ResultsRoot)
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
// least f+1 distinct replicas of the cluster signed the statement (each
// signature must name a replica of the cluster, match its key if it
// states one, and verify; a replica counted twice counts once). The
// error wraps ErrWrongCluster, ErrMalformed, ErrTamperedResult,
// ErrBadProof, ErrUnknownKey, ErrBadSignature or ErrTooFewSigners.
func Verify(r *Receipt, cluster config.ClusterFile) error {
	if r == nil {
		return fmt.Errorf("%w: no receipt", ErrMalformed)
	}
	if r.ClusterID != cluster.ClusterID {
		return fmt.Errorf("%w: the receipt is for cluster %q, the cluster file is %q", ErrWrongCluster, r.ClusterID, cluster.ClusterID)
	}
	replicas, err := cluster.Decode()
	if err != nil {
		return fmt.Errorf("receipt: cluster file: %w", err)
	}
	d, err := decode(r)
	if err != nil {
		return err
	}
	if want := FormatResult(r.Operation, d.raw); r.Result != want {
		return fmt.Errorf("%w: result %q is not the signed raw result, which prints as %q", ErrTamperedResult, r.Result, want)
	}
	leaf := LeafHash(d.clientID, r.RequestNumber, d.raw)
	if err := VerifyProof(leaf, uint64(r.LeafIndex), uint64(r.LeafCount), d.proof, d.statement.ResultsRoot); err != nil {
		return err
	}
	keys := make(map[uint32]ed25519.PublicKey, len(replicas))
	for _, rep := range replicas {
		keys[rep.Index] = rep.PublicKey
	}
	payload := d.statement.Payload()
	signers := make(map[uint32]bool)
	for i, s := range r.Signatures {
		key, ok := keys[s.Replica]
		if !ok {
			return fmt.Errorf("%w: signature %d names replica %d, not in the cluster", ErrUnknownKey, i, s.Replica)
		}
		if s.PublicKey != "" {
			stated, err := hex.DecodeString(s.PublicKey)
			if err != nil || !key.Equal(ed25519.PublicKey(stated)) {
				return fmt.Errorf("%w: signature %d states a key that is not replica %d's", ErrUnknownKey, i, s.Replica)
			}
		}
		sig, err := hex.DecodeString(s.Signature)
		if err != nil || !crypto.Verify(key, cluster.ClusterID, crypto.DomainReceipt, payload, sig) {
			return fmt.Errorf("%w: replica %d's signature does not verify over the statement", ErrBadSignature, s.Replica)
		}
		signers[s.Replica] = true
	}
	need := config.FaultTolerance(config.ConsensusPBFT, len(replicas)) + 1
	if len(signers) < need {
		return fmt.Errorf("%w: %d distinct replicas signed, %d needed (f+1 of %d)", ErrTooFewSigners, len(signers), need, len(replicas))
	}
	return nil
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
	d.statement.Sequence = r.Sequence
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
