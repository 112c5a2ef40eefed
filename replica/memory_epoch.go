package replica

import "fmt"

// SaveEpoch implements EpochStorage, with storage.DB's rules.
func (m *MemoryStorage) SaveEpoch(epoch uint64, encodedCert []byte) error {
	if len(encodedCert) == 0 {
		return fmt.Errorf("save epoch: empty certificate")
	}
	if epoch != uint64(len(m.epochs))+1 {
		return fmt.Errorf("save epoch %d after epoch %d", epoch, len(m.epochs))
	}
	m.epochs = append(m.epochs, append([]byte(nil), encodedCert...))
	return nil
}

// LoadEpochs implements EpochStorage.
func (m *MemoryStorage) LoadEpochs() ([][]byte, error) {
	return append([][]byte(nil), m.epochs...), nil
}
