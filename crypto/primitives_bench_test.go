package crypto

import (
	stded "crypto/ed25519"
	"fmt"
	"testing"

	voied "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

var zip215 = &voied.Options{Verify: voied.VerifyOptionsZIP_215}

func benchMsgs(n int) (stded.PrivateKey, [][]byte, [][]byte) {
	key := stded.NewKeyFromSeed(make([]byte, 32))
	msgs := make([][]byte, n)
	sigs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = SignedBytes(DomainClientRequest, "localnet-1700000000000000000", fmt.Appendf(nil, "%0100d", i))
		sigs[i] = stded.Sign(key, msgs[i])
	}
	return key, msgs, sigs
}

func BenchmarkPrimStdSign(b *testing.B) {
	key, msgs, _ := benchMsgs(1)
	for b.Loop() {
		stded.Sign(key, msgs[0])
	}
}
func BenchmarkPrimVoiSign(b *testing.B) {
	key, msgs, _ := benchMsgs(1)
	for b.Loop() {
		voied.Sign(voied.PrivateKey(key), msgs[0])
	}
}
func BenchmarkPrimStdVerify(b *testing.B) {
	key, msgs, sigs := benchMsgs(1)
	pub := key.Public().(stded.PublicKey)
	for b.Loop() {
		stded.Verify(pub, msgs[0], sigs[0])
	}
}
func BenchmarkPrimVoiVerify(b *testing.B) {
	key, msgs, sigs := benchMsgs(1)
	pub := voied.PublicKey(key.Public().(stded.PublicKey))
	for b.Loop() {
		voied.VerifyWithOptions(pub, msgs[0], sigs[0], zip215)
	}
}
func BenchmarkPrimVoiVerifyExpanded(b *testing.B) {
	key, msgs, sigs := benchMsgs(1)
	x, _ := voied.NewExpandedPublicKey(voied.PublicKey(key.Public().(stded.PublicKey)))
	for b.Loop() {
		voied.VerifyExpandedWithOptions(x, msgs[0], sigs[0], zip215)
	}
}
func BenchmarkPrimVoiExpand(b *testing.B) {
	key, _, _ := benchMsgs(1)
	for b.Loop() {
		voied.NewExpandedPublicKey(voied.PublicKey(key.Public().(stded.PublicKey)))
	}
}
func BenchmarkPrimVoiBatch(b *testing.B) {
	for _, n := range []int{2, 4, 8, 16, 32, 64, 93, 128, 256} {
		for _, exp := range []bool{false, true} {
			b.Run(fmt.Sprintf("n=%d/expanded=%v", n, exp), func(b *testing.B) {
				key, msgs, sigs := benchMsgs(n)
				pub := voied.PublicKey(key.Public().(stded.PublicKey))
				x, _ := voied.NewExpandedPublicKey(pub)
				bv := voied.NewBatchVerifierWithCapacity(n)
				for b.Loop() {
					bv.Reset()
					if !exp {
						bv.ForceNoPublicKeyExpansion()
					}
					for i := range msgs {
						if exp {
							bv.AddExpandedWithOptions(x, msgs[i], sigs[i], zip215)
						} else {
							bv.AddWithOptions(pub, msgs[i], sigs[i], zip215)
						}
					}
					if !bv.VerifyBatchOnly(nil) {
						b.Fatal("batch failed")
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sig")
			})
		}
	}
}
