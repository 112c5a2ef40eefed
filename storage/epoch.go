package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/syndtr/goleveldb/leveldb"
)

// PBFT configuration epochs: p/config/<epoch BE8> holds the encoded
// wire.ConfigCertificate that proves epoch (1, 2, ...), and p/epoch the
// latest epoch this replica switched to. Both are written in one batch, so
// a replica never holds an epoch without its certificate or the reverse.
const (
	epochKey        = PrefixProtocol + "epoch"
	configCertPrefx = PrefixProtocol + "config/"
)

// MaxStoredEpochs bounds how many certificates LoadEpochs reads back.
const MaxStoredEpochs = 1 << 16

func configCertKey(epoch uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(configCertPrefx), epoch)
}

// SaveEpoch durably (per Options.Sync) records that this replica switched
// to epoch, proven by encodedCert (an encoded wire.ConfigCertificate),
// atomically with the certificate. Epochs are saved in order: epoch must
// be the stored epoch + 1.
func (d *DB) SaveEpoch(epoch uint64, encodedCert []byte) error {
	if len(encodedCert) == 0 {
		return errors.New("save epoch: empty certificate")
	}
	current, err := d.loadEpoch()
	if err != nil {
		return err
	}
	if epoch != current+1 {
		return fmt.Errorf("save epoch %d after epoch %d", epoch, current)
	}
	batch := new(leveldb.Batch)
	batch.Put(configCertKey(epoch), encodedCert)
	batch.Put([]byte(epochKey), binary.BigEndian.AppendUint64(nil, epoch))
	if err := d.ldb.Write(batch, d.writeOptions()); err != nil {
		return fmt.Errorf("save epoch %d: %w", epoch, err)
	}
	return nil
}

// LoadEpochs returns the certificates of epochs 1 to the stored epoch, in
// order (none before the first switch). The caller decodes and verifies
// them.
func (d *DB) LoadEpochs() ([][]byte, error) {
	current, err := d.loadEpoch()
	if err != nil {
		return nil, err
	}
	if current > MaxStoredEpochs {
		return nil, fmt.Errorf("load epochs: epoch %d beyond %d", current, MaxStoredEpochs)
	}
	certs := make([][]byte, 0, current)
	for e := uint64(1); e <= current; e++ {
		b, err := d.ldb.Get(configCertKey(e), nil)
		if err != nil {
			return nil, fmt.Errorf("load certificate of epoch %d: %w", e, err)
		}
		certs = append(certs, b)
	}
	return certs, nil
}

func (d *DB) loadEpoch() (uint64, error) {
	b, err := d.ldb.Get([]byte(epochKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load epoch: %w", err)
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("load epoch: corrupt value of %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
