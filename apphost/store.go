package apphost

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pbftnode/pbftnode/app"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/storage"
)

// Keys of the host's records in the replica's database (see the package
// documentation).
const (
	hostPrefix     = storage.PrefixApp + "x/"
	manifestKey    = hostPrefix + "m"
	chunkPrefix    = hostPrefix + "s/"
	journalPrefix  = hostPrefix + "j/"
	recordedKey    = hostPrefix + "d"
	manifestSize   = 8 + 32 + 4 + 8
	recordedSize   = 8 + 32
	chunkIndexSize = 4
	journalSeqSize = 8
)

// Limits of the stored records, checked on every record read from the
// database or received from a peer.
const (
	// ChunkSize is the largest snapshot chunk stored under one key.
	ChunkSize = 1 << 20
	// MaxJournalEntryBytes bounds one journal entry (the requests of one
	// batch).
	MaxJournalEntryBytes = 64 << 20
	// maxChunks bounds a manifest's chunk count (a 4 TiB snapshot).
	maxChunks = 1 << 22
)

var errCorruptRecord = errors.New("corrupt record")

// manifest describes the stored snapshot: the application's State at the
// snapshot (State.Sequence 0: no snapshot stored) and its chunks.
type manifest struct {
	state      app.State
	chunks     uint32
	totalBytes uint64
}

func (m manifest) encode() []byte {
	out := make([]byte, 0, manifestSize)
	out = binary.BigEndian.AppendUint64(out, m.state.Sequence)
	out = append(out, m.state.Digest[:]...)
	out = binary.BigEndian.AppendUint32(out, m.chunks)
	return binary.BigEndian.AppendUint64(out, m.totalBytes)
}

func decodeManifest(value []byte) (manifest, error) {
	if len(value) != manifestSize {
		return manifest{}, fmt.Errorf("manifest of %d bytes, want %d: %w", len(value), manifestSize, errCorruptRecord)
	}
	var m manifest
	m.state.Sequence = binary.BigEndian.Uint64(value)
	copy(m.state.Digest[:], value[8:40])
	m.chunks = binary.BigEndian.Uint32(value[40:])
	m.totalBytes = binary.BigEndian.Uint64(value[44:])
	switch {
	case m.state.Sequence == 0:
		return manifest{}, fmt.Errorf("manifest at sequence 0: %w", errCorruptRecord)
	case m.chunks > maxChunks:
		return manifest{}, fmt.Errorf("manifest with %d chunks over limit %d: %w", m.chunks, maxChunks, errCorruptRecord)
	case m.totalBytes > uint64(m.chunks)*ChunkSize:
		return manifest{}, fmt.Errorf("manifest of %d bytes in %d chunks: %w", m.totalBytes, m.chunks, errCorruptRecord)
	case m.chunks > 0 && m.totalBytes <= uint64(m.chunks-1)*ChunkSize:
		return manifest{}, fmt.Errorf("manifest of %d bytes in %d chunks (a chunk would be empty): %w", m.totalBytes, m.chunks, errCorruptRecord)
	}
	return m, nil
}

func encodeState(s app.State) []byte {
	out := make([]byte, 0, recordedSize)
	out = binary.BigEndian.AppendUint64(out, s.Sequence)
	return append(out, s.Digest[:]...)
}

func decodeState(value []byte) (app.State, error) {
	if len(value) != recordedSize {
		return app.State{}, fmt.Errorf("recorded state of %d bytes, want %d: %w", len(value), recordedSize, errCorruptRecord)
	}
	var s app.State
	s.Sequence = binary.BigEndian.Uint64(value)
	copy(s.Digest[:], value[8:])
	return s, nil
}

func chunkKey(index uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(chunkPrefix), index)
}

func journalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(journalPrefix), seq)
}

// parseJournalKey returns the sequence of a journal key.
func parseJournalKey(key []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(key, []byte(journalPrefix))
	if !ok || len(rest) != journalSeqSize {
		return 0, false
	}
	return binary.BigEndian.Uint64(rest), true
}

// encodeJournal encodes the requests a batch executed: uvarint count, then
// per request uvarint len(client) || client || uvarint request number ||
// uvarint len(payload) || payload.
func encodeJournal(reqs []execution.Request) []byte {
	size := binary.MaxVarintLen64
	for _, r := range reqs {
		size += 3*binary.MaxVarintLen64 + len(r.ClientID) + len(r.Operation)
	}
	out := make([]byte, 0, size)
	out = binary.AppendUvarint(out, uint64(len(reqs)))
	for _, r := range reqs {
		out = binary.AppendUvarint(out, uint64(len(r.ClientID)))
		out = append(out, r.ClientID...)
		out = binary.AppendUvarint(out, r.RequestNumber)
		out = binary.AppendUvarint(out, uint64(len(r.Operation)))
		out = append(out, r.Operation...)
	}
	return out
}

// decodeJournal decodes a journal entry (hostile bytes: every length is
// checked against what is left). The operations alias value.
func decodeJournal(value []byte) ([]app.Operation, error) {
	if len(value) > MaxJournalEntryBytes {
		return nil, fmt.Errorf("journal entry of %d bytes over limit %d: %w", len(value), MaxJournalEntryBytes, errCorruptRecord)
	}
	rest := value
	uvarint := func(what string) (uint64, error) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, fmt.Errorf("journal entry: bad %s: %w", what, errCorruptRecord)
		}
		rest = rest[n:]
		return v, nil
	}
	bytesOf := func(what string, max uint64) ([]byte, error) {
		n, err := uvarint(what + " length")
		if err != nil {
			return nil, err
		}
		if n > max || n > uint64(len(rest)) {
			return nil, fmt.Errorf("journal entry: %s of %d bytes (limit %d, %d left): %w", what, n, max, len(rest), errCorruptRecord)
		}
		b := rest[:n:n]
		rest = rest[n:]
		return b, nil
	}
	count, err := uvarint("count")
	if err != nil {
		return nil, err
	}
	// Each request takes at least 4 bytes (three lengths, a client byte).
	if count > uint64(len(rest))/4 {
		return nil, fmt.Errorf("journal entry: %d requests in %d bytes: %w", count, len(rest), errCorruptRecord)
	}
	ops := make([]app.Operation, 0, count)
	for range count {
		client, err := bytesOf("client", execution.MaxClientIDSize)
		if err != nil {
			return nil, err
		}
		if len(client) == 0 {
			return nil, fmt.Errorf("journal entry: empty client: %w", errCorruptRecord)
		}
		number, err := uvarint("request number")
		if err != nil {
			return nil, err
		}
		payload, err := bytesOf("payload", MaxJournalEntryBytes)
		if err != nil {
			return nil, err
		}
		ops = append(ops, app.Operation{Client: client, RequestNumber: number, Payload: payload})
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("journal entry: %d trailing bytes: %w", len(rest), errCorruptRecord)
	}
	return ops, nil
}

// toOperations converts the executor's requests to the application's
// operations (sharing their bytes).
func toOperations(reqs []execution.Request) []app.Operation {
	ops := make([]app.Operation, len(reqs))
	for i, r := range reqs {
		ops[i] = app.Operation{Client: r.ClientID, RequestNumber: r.RequestNumber, Payload: r.Operation}
	}
	return ops
}

// checkEntry validates one transferred record by its key and value alone
// (see Host.CheckTransferEntry).
func checkEntry(key, value []byte) error {
	switch {
	case string(key) == manifestKey:
		_, err := decodeManifest(value)
		return err
	case bytes.HasPrefix(key, []byte(chunkPrefix)):
		if len(key) != len(chunkPrefix)+chunkIndexSize {
			return fmt.Errorf("snapshot chunk key of %d bytes: %w", len(key), errCorruptRecord)
		}
		if index := binary.BigEndian.Uint32(key[len(chunkPrefix):]); index >= maxChunks {
			return fmt.Errorf("snapshot chunk %d over limit %d: %w", index, maxChunks, errCorruptRecord)
		}
		if len(value) == 0 || len(value) > ChunkSize {
			return fmt.Errorf("snapshot chunk of %d bytes, want 1..%d: %w", len(value), ChunkSize, errCorruptRecord)
		}
		return nil
	case bytes.HasPrefix(key, []byte(journalPrefix)):
		seq, ok := parseJournalKey(key)
		if !ok || seq == 0 {
			return fmt.Errorf("journal key %x: %w", truncate(key), errCorruptRecord)
		}
		_, err := decodeJournal(value)
		return err
	default:
		return fmt.Errorf("key %q is not a transferred application record: %w", truncate(key), errCorruptRecord)
	}
}

// isTransferKey reports whether key is a transferred record (manifest,
// chunk or journal entry; the recorded state is derived).
func isTransferKey(key []byte) bool {
	return string(key) == manifestKey ||
		bytes.HasPrefix(key, []byte(chunkPrefix)) ||
		bytes.HasPrefix(key, []byte(journalPrefix))
}

// truncate shortens a hostile key for error messages.
func truncate(key []byte) []byte {
	const limit = 64
	if len(key) > limit {
		return key[:limit]
	}
	return key
}
