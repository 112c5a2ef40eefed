package node

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/checkpoint"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// recover loads what the database holds into the core: the view, the
// stable checkpoint certificate, the executed sequence and the protocol
// log above the checkpoint. Everything read back is verified again, as if
// it came from the network.
//
// On a first start (nothing stored) it stores view 0 instead, durably and
// before the core sends anything, so that every later start is a restart
// the core learns of through Restore: the primary may send PRE-PREPAREs
// before persisting them (Outbound.BeforePersist), and only a restored
// primary knows to abdicate.
func (n *Node) recover() error {
	rec := protocol.Recovered{Executed: n.executor.LastExecuted()}
	view, active, found, err := n.db.LoadViewState()
	if err != nil {
		return fmt.Errorf("node: recover view: %w", err)
	}
	rec.View, rec.ViewChanging = view, !active
	encoded, found, err := n.db.LoadStableCheckpoint()
	if err != nil {
		return fmt.Errorf("node: recover stable checkpoint: %w", err)
	}
	from := uint64(0)
	if found {
		cert, err := n.decodeCertificate(encoded)
		if err != nil {
			return fmt.Errorf("node: recover stable checkpoint: %w", err)
		}
		rec.Stable = &cert
		from = cert.Sequence + 1
	}
	entries, err := n.db.LoadLog(from)
	if err != nil {
		return fmt.Errorf("node: recover log: %w", err)
	}
	for _, e := range entries {
		if e.Kind == byte(protocol.KindPreparedCertificate) {
			var wc wire.PreparedCertificate
			if err := proto.Unmarshal(e.Signed, &wc); err != nil {
				return fmt.Errorf("node: recover prepared certificate at %d: %w", e.Sequence, err)
			}
			pc, err := n.verifier.PreparedCertificate(&wc)
			if err != nil {
				return fmt.Errorf("node: recover prepared certificate at %d: %w", e.Sequence, err)
			}
			rec.Prepared = append(rec.Prepared, pc)
			continue
		}
		m, err := n.verifier.ReplicaFrame(e.Signed)
		if err != nil {
			return fmt.Errorf("node: recover log entry at sequence %d: %w", e.Sequence, err)
		}
		rec.Log = append(rec.Log, m)
	}
	if !found && rec.Stable == nil && len(rec.Log) == 0 && len(rec.Prepared) == 0 && rec.Executed == 0 {
		if err := n.db.SaveViewState(0, true); err != nil {
			return fmt.Errorf("node: first start: %w", err)
		}
		return nil
	}
	if err := n.core.Restore(rec); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if rec.Executed > 0 || len(rec.Log) > 0 {
		stable := uint64(0)
		if rec.Stable != nil {
			stable = rec.Stable.Sequence
		}
		n.log.Info("recovered", "view", rec.View, "executed", rec.Executed, "stable_checkpoint", stable, "log_entries", len(rec.Log))
	}
	return nil
}

// encodeCertificate encodes a stable checkpoint's proof for storage.
func encodeCertificate(cert *checkpoint.Certificate) ([]byte, error) {
	votes := make([]*wire.Signed, len(cert.Proof))
	for i, v := range cert.Proof {
		if v.Signed == nil {
			return nil, errors.New("node: certificate vote without its signed message")
		}
		votes[i] = v.Signed
	}
	return proto.Marshal(&wire.CheckpointCertificate{Votes: votes})
}

func (n *Node) decodeCertificate(b []byte) (checkpoint.Certificate, error) {
	var wc wire.CheckpointCertificate
	if err := proto.Unmarshal(b, &wc); err != nil {
		return checkpoint.Certificate{}, err
	}
	return n.verifier.CheckpointCertificate(&wc, protocol.Quorum(len(n.cfg.Replicas)), n.core.CheckpointInterval())
}
