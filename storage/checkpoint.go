package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/syndtr/goleveldb/leveldb"
)

const (
	stableCheckpointKey = PrefixProtocol + "stable"
	transferMarkerKey   = PrefixProtocol + "transfer"
)

// transferMarkerValue is the only value the transfer marker ever holds.
var transferMarkerValue = []byte{1}

// SaveStableCheckpoint durably (per Options.Sync) records the replica's
// latest stable checkpoint: an encoded wire.CheckpointCertificate, which
// this package stores as opaque bytes. It replaces any earlier one. An
// empty certificate is rejected.
func (d *DB) SaveStableCheckpoint(encodedCert []byte) error {
	if len(encodedCert) == 0 {
		return errors.New("save stable checkpoint: empty certificate")
	}
	if err := d.ldb.Put([]byte(stableCheckpointKey), encodedCert, d.writeOptions()); err != nil {
		return fmt.Errorf("save stable checkpoint: %w", err)
	}
	return nil
}

// LoadStableCheckpoint returns the certificate saved by
// SaveStableCheckpoint; found is false when none was saved. The bytes were
// written by this replica but the caller still decodes and verifies them.
func (d *DB) LoadStableCheckpoint() (encodedCert []byte, found bool, err error) {
	value, err := d.ldb.Get([]byte(stableCheckpointKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("load stable checkpoint: %w", err)
	}
	if len(value) == 0 {
		return nil, false, errors.New("load stable checkpoint: corrupt empty value")
	}
	return value, true, nil
}

// SetTransferInProgress durably (per Options.Sync) sets or clears the
// state-transfer marker. The executor sets it before it starts replacing
// the application and executor state with a snapshot fetched from peers
// and clears it once the new state is complete and verified, so a crash in
// between is detected on restart (see execution.NewExecutor).
func (d *DB) SetTransferInProgress(on bool) error {
	var err error
	if on {
		err = d.ldb.Put([]byte(transferMarkerKey), transferMarkerValue, d.writeOptions())
	} else {
		err = d.ldb.Delete([]byte(transferMarkerKey), d.writeOptions())
	}
	if err != nil {
		return fmt.Errorf("set state transfer marker to %t: %w", on, err)
	}
	return nil
}

// TransferInProgress reports whether the state-transfer marker is set.
func (d *DB) TransferInProgress() (bool, error) {
	value, err := d.ldb.Get([]byte(transferMarkerKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load state transfer marker: %w", err)
	}
	if !bytes.Equal(value, transferMarkerValue) {
		return false, fmt.Errorf("load state transfer marker: corrupt value %x", value)
	}
	return true, nil
}
