package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"slices"
	"sync"

	"github.com/pbftnode/pbftnode/app"
)

// The counters application: named signed 64-bit counters, in memory.
//
// Operations (the application's own encoding, hostile bytes from clients):
//
//	'a' len(name) name delta(8 bytes, big-endian int64)   add delta, return the new value
//	'r' len(name) name                                    return the value (0 if never added to)
//
// Results: 0x00 value(8 bytes, big-endian int64), or 0x01 followed by an
// error text. A malformed operation, an overflow or one counter too many is
// an error result that changes nothing.
const (
	opAdd  = 'a'
	opRead = 'r'

	resultOK    = 0x00
	resultError = 0x01

	// maxNameLen and maxCounters bound what clients can make the
	// application hold.
	maxNameLen  = 64
	maxCounters = 4096
	// maxSnapshotBytes bounds what Restore reads: maxCounters entries of
	// at most 1+maxNameLen+8 bytes, after a 4-byte count.
	maxSnapshotBytes = 4 + maxCounters*(1+maxNameLen+8)
)

// EncodeAdd is the operation adding delta to the counter name.
func EncodeAdd(name string, delta int64) []byte {
	b := append([]byte{opAdd, byte(len(name))}, name...)
	return binary.BigEndian.AppendUint64(b, uint64(delta))
}

// EncodeRead is the operation reading the counter name.
func EncodeRead(name string) []byte { return append([]byte{opRead, byte(len(name))}, name...) }

// DecodeResult returns the value a result carries, or the error it reports.
func DecodeResult(res []byte) (int64, error) {
	switch {
	case len(res) == 9 && res[0] == resultOK:
		return int64(binary.BigEndian.Uint64(res[1:])), nil
	case len(res) >= 1 && res[0] == resultError:
		return 0, errors.New(string(res[1:]))
	}
	return 0, fmt.Errorf("malformed result %x", res)
}

// Counters implements app.Application. Its digest is the sum, modulo
// 2^256, of SHA-256(len(name) || name || value) over its counters: updated
// in O(1) per operation, independent of the order counters were created,
// equal for equal states. The mutex lets the program read the state while
// the replica runs; the replica itself calls one method at a time.
type Counters struct {
	mu     sync.Mutex
	values map[string]int64
	state  app.State
	sum    *big.Int
}

// modulus is 2^256: the digest is a 256-bit sum.
var modulus = new(big.Int).Lsh(big.NewInt(1), 256)

// NewCounters returns the initial state: no counter, sequence 0.
func NewCounters() *Counters {
	return &Counters{values: map[string]int64{}, sum: new(big.Int)}
}

// entryHash is one counter's contribution to the digest.
func entryHash(name string, value int64) *big.Int {
	b := append([]byte{byte(len(name))}, name...)
	h := sha256.Sum256(binary.BigEndian.AppendUint64(b, uint64(value)))
	return new(big.Int).SetBytes(h[:])
}

// set changes a counter, keeping the digest sum.
func (c *Counters) set(name string, value int64) {
	if old, ok := c.values[name]; ok {
		c.sum.Sub(c.sum, entryHash(name, old))
	}
	c.values[name] = value
	c.sum.Add(c.sum, entryHash(name, value)).Mod(c.sum, modulus)
}

// digest is the digest of the current counters.
func (c *Counters) digest() [32]byte {
	var d [32]byte
	c.sum.FillBytes(d[:])
	return d
}

// Info returns the last executed sequence and the digest after it.
func (c *Counters) Info(context.Context) (app.State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, nil
}

// Execute executes the batch at sequence: one result per operation.
func (c *Counters) Execute(_ context.Context, sequence uint64, ops []app.Operation) ([][]byte, [32]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sequence != c.state.Sequence+1 {
		return nil, [32]byte{}, fmt.Errorf("counters: batch %d after batch %d", sequence, c.state.Sequence)
	}
	results := make([][]byte, len(ops))
	for i, op := range ops {
		results[i] = c.apply(op.Payload)
	}
	c.state = app.State{Sequence: sequence, Digest: c.digest()}
	return results, c.state.Digest, nil
}

// apply executes one operation.
func (c *Counters) apply(op []byte) []byte {
	if len(op) < 2 || op[1] == 0 || int(op[1]) > maxNameLen || len(op) < 2+int(op[1]) {
		return errorResult("malformed operation")
	}
	name, rest := string(op[2:2+int(op[1])]), op[2+int(op[1]):]
	switch {
	case op[0] == opRead && len(rest) == 0:
		return valueResult(c.values[name])
	case op[0] == opAdd && len(rest) == 8:
		delta := int64(binary.BigEndian.Uint64(rest))
		old, exists := c.values[name]
		if !exists && len(c.values) >= maxCounters {
			return errorResult("too many counters")
		}
		sum := old + delta
		if (delta > 0 && sum < old) || (delta < 0 && sum > old) {
			return errorResult("overflow")
		}
		c.set(name, sum)
		return valueResult(sum)
	}
	return errorResult("malformed operation")
}

func valueResult(v int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{resultOK}, uint64(v))
}

func errorResult(msg string) []byte { return append([]byte{resultError}, msg...) }

// Query answers EncodeRead operations without changing the state.
func (c *Counters) Query(_ context.Context, q []byte) ([]byte, error) {
	if len(q) < 1 || q[0] != opRead {
		return errorResult("only reads can be queried"), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apply(q), nil
}

// Snapshot writes the counters in name order: a 4-byte count, then
// len(name) name value(8 bytes) each.
func (c *Counters) Snapshot(_ context.Context, w io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := binary.BigEndian.AppendUint32(nil, uint32(len(c.values)))
	for _, name := range slices.Sorted(maps.Keys(c.values)) {
		b = append(append(b, byte(len(name))), name...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.values[name]))
	}
	_, err := w.Write(b)
	return err
}

// Restore replaces the counters with a snapshot (any replica's: hostile
// bytes until the digest checks out) and makes state current.
func (c *Counters) Restore(_ context.Context, state app.State, r io.Reader) error {
	restored := NewCounters()
	if err := restored.read(bufio.NewReader(io.LimitReader(r, maxSnapshotBytes+1))); err != nil {
		return fmt.Errorf("counters: restore: %w", err)
	}
	if state.Sequence > 0 && restored.digest() != state.Digest {
		return fmt.Errorf("counters: restore: snapshot digest %x, want %x", restored.digest(), state.Digest)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values, c.sum = restored.values, restored.sum
	c.state = app.State{Sequence: state.Sequence, Digest: c.digest()}
	return nil
}

// read decodes a snapshot (an empty one is the initial state).
func (c *Counters) read(r *bufio.Reader) error {
	var count uint32
	if err := binary.Read(r, binary.BigEndian, &count); errors.Is(err, io.EOF) {
		return nil
	} else if err != nil || count > maxCounters {
		return fmt.Errorf("bad counter count (%d, %v)", count, err)
	}
	prev := ""
	for i := range count {
		n, err := r.ReadByte()
		if err != nil || n == 0 || n > maxNameLen {
			return fmt.Errorf("counter %d: bad name length", i)
		}
		entry := make([]byte, int(n)+8)
		if _, err := io.ReadFull(r, entry); err != nil {
			return fmt.Errorf("counter %d: %w", i, err)
		}
		name := string(entry[:n])
		if i > 0 && name <= prev {
			return fmt.Errorf("counter %d: names out of order", i)
		}
		prev = name
		c.set(name, int64(binary.BigEndian.Uint64(entry[n:])))
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		return errors.New("trailing bytes")
	}
	return nil
}

// Values returns a copy of the counters, for comparing replicas.
func (c *Counters) Values() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.values)
}
