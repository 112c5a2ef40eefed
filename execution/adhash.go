package execution

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// adHash is an incremental multiset hash: the sum modulo 2^256 of the
// SHA-256 digests of the elements. Adding and removing an element are O(1)
// and the result does not depend on the order of updates. Limb 0 is the
// least significant 64 bits.
type adHash [4]uint64

// add adds the big-endian 256-bit number h.
func (a *adHash) add(h [32]byte) {
	var carry uint64
	for i := range 4 {
		limb := binary.BigEndian.Uint64(h[32-8*(i+1):])
		a[i], carry = bits.Add64(a[i], limb, carry)
	}
}

// sub subtracts the big-endian 256-bit number h.
func (a *adHash) sub(h [32]byte) {
	var borrow uint64
	for i := range 4 {
		limb := binary.BigEndian.Uint64(h[32-8*(i+1):])
		a[i], borrow = bits.Sub64(a[i], limb, borrow)
	}
}

// bytes returns the accumulator as a big-endian 32-byte value.
func (a *adHash) bytes() [32]byte {
	var out [32]byte
	for i := range 4 {
		binary.BigEndian.PutUint64(out[32-8*(i+1):], a[i])
	}
	return out
}

// adHashFromBytes is the inverse of bytes.
func adHashFromBytes(b [32]byte) adHash {
	var a adHash
	a.add(b)
	return a
}

// hashScratchSize is the size of the stack buffer entryHash and replyHash
// hash small inputs from in one sha256.Sum256 call (no allocation); larger
// inputs are streamed. Both ways hash the same bytes.
const hashScratchSize = 512

// entryHash returns SHA-256(domain || uvarint(len k) || k || v).
func entryHash(domain string, k, v []byte) [32]byte {
	var buf [hashScratchSize]byte
	if len(domain)+binary.MaxVarintLen64+len(k)+len(v) > len(buf) {
		h := sha256.New()
		h.Write([]byte(domain))
		var lenBuf [binary.MaxVarintLen64]byte
		h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(k)))])
		h.Write(k)
		h.Write(v)
		var out [32]byte
		h.Sum(out[:0])
		return out
	}
	b := append(buf[:0], domain...)
	b = binary.AppendUvarint(b, uint64(len(k)))
	b = append(b, k...)
	b = append(b, v...)
	return sha256.Sum256(b)
}
