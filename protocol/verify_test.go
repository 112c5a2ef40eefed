package protocol

import (
	"crypto/ed25519"
	"fmt"
	"math/rand"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/verifypool"
	"github.com/pbftnode/pbftnode/wire"
)

// verifyCorpus returns frames of every kind the verifier meets: valid ones
// of each type, each way a frame can fail (decoding, sender, replica
// signature, structure, client signature), and client requests, good and
// bad.
func verifyCorpus(t *testing.T) []Frame {
	t.Helper()
	var frames []Frame
	bodies := fzValidBodies(t)
	for _, name := range []string{"pre_prepare", "prepare", "commit", "checkpoint", "forward"} {
		body := bodies[name]
		frames = append(frames, Frame{ReplicaFrame: fzFrame(t, body.From, body)})
	}
	for _, g := range append(fzGarbage(t), fzEdge(t)...) {
		frames = append(frames, Frame{ReplicaFrame: g})
	}
	// A pre-prepare whose batch holds a request with a bad client
	// signature: the replica's signature is fine, the client's is not.
	bad := fzRequest(t, 1, 9, "put b 2")
	bad.Signature = append([]byte(nil), bad.Signature...)
	bad.Signature[3] ^= 0x40
	batch := []*wire.Signed{fzRequest(t, 0, 8, "put c 3"), bad}
	d := crypto.BatchDigest(batch)
	body := &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{Sequence: 2, Digest: d[:]}}}
	payload := fzMarshal(t, body)
	sig := crypto.NewSigner(fzReplicaKey(0), fzCluster).Sign(crypto.DomainReplicaMessage, payload)
	frames = append(frames, Frame{ReplicaFrame: fzMarshal(t, &wire.ReplicaFrame{Message: &wire.Signed{Payload: payload, Signature: sig}, Batch: batch})})
	// The same with a bad replica signature too: the replica's signature
	// decides the error.
	badSig := append([]byte(nil), sig...)
	badSig[0] ^= 1
	frames = append(frames, Frame{ReplicaFrame: fzMarshal(t, &wire.ReplicaFrame{Message: &wire.Signed{Payload: payload, Signature: badSig}, Batch: batch})})
	// A good pre-prepare of a larger batch.
	var big []*wire.Signed
	for i := range 40 {
		big = append(big, fzRequest(t, i%fzClients, uint64(100+i), fmt.Sprintf("put k%d v", i)))
	}
	d = crypto.BatchDigest(big)
	body = &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{Sequence: 3, Digest: d[:]}}}
	payload = fzMarshal(t, body)
	sig = crypto.NewSigner(fzReplicaKey(0), fzCluster).Sign(crypto.DomainReplicaMessage, payload)
	frames = append(frames, Frame{ReplicaFrame: fzMarshal(t, &wire.ReplicaFrame{Message: &wire.Signed{Payload: payload, Signature: sig}, Batch: big})})
	// Bundles: a good pre-prepare of two, a forged member (client 1's
	// request in client 0's bundle), members sent alone.
	bundle := fzBundle(t, 0, fzOwners(0, 5), 400)
	forged := fzBundle(t, 0, []int{0, 1}, 500)
	frames = append(frames,
		Frame{ReplicaFrame: fzPrePrepareFrame(t, 4, append(append([]*wire.Signed{}, bundle...), fzBundle(t, 1, fzOwners(1, 3), 450)...))},
		Frame{ReplicaFrame: fzPrePrepareFrame(t, 5, forged)},
		Frame{ClientRequest: bundle[2]}, Frame{ClientRequest: forged[0]}, Frame{ClientRequest: forged[1]},
	)
	// Replica messages without a frame.
	for _, name := range []string{"prepare", "commit"} {
		b := bodies[name]
		p := fzMarshal(t, b)
		frames = append(frames,
			Frame{ReplicaMessage: &wire.Signed{Payload: p, Signature: crypto.NewSigner(fzReplicaKey(int(b.From)), fzCluster).Sign(crypto.DomainReplicaMessage, p)}},
			Frame{ReplicaMessage: &wire.Signed{Payload: p, Signature: make([]byte, 64)}})
	}
	// Client requests.
	frames = append(frames,
		Frame{ClientRequest: fzRequest(t, 0, 50, "put x 1")},
		Frame{ClientRequest: fzRequest(t, 1, 51, "get x")},
		Frame{ClientRequest: bad},
		Frame{ClientRequest: &wire.Signed{Payload: []byte{0xff}, Signature: make([]byte, 64)}},
		Frame{ClientRequest: &wire.Signed{Payload: fzMarshal(t, &wire.Request{ClientId: []byte{1, 2}}), Signature: make([]byte, 64)}},
	)
	return frames
}

func sameVerdict(t *testing.T, label string, i int, got, want Verified) {
	t.Helper()
	if (got.Err == nil) != (want.Err == nil) || (got.Err != nil && got.Err.Error() != want.Err.Error()) {
		t.Fatalf("%s: frame %d: err %v, alone %v", label, i, got.Err, want.Err)
	}
	if got.Err != nil {
		return
	}
	if (got.Message.Body == nil) != (want.Message.Body == nil) || len(got.Message.Requests) != len(want.Message.Requests) ||
		(got.Request.Request == nil) != (want.Request.Request == nil) {
		t.Fatalf("%s: frame %d: verdict %+v, alone %+v", label, i, got, want)
	}
	for k, r := range got.Message.Requests {
		if r.RequestNumber != want.Message.Requests[k].RequestNumber {
			t.Fatalf("%s: frame %d: request %d differs", label, i, k)
		}
	}
}

// TestVerifyFramesMatchesOneByOne: verifying frames together gives each
// frame exactly the verdict (and error) it gets alone, whatever else is in
// the set, with or without the cache and the pool.
func TestVerifyFramesMatchesOneByOne(t *testing.T) {
	corpus := verifyCorpus(t)
	pubs := fzPublicKeys()
	alone := make([]Verified, len(corpus))
	for i, f := range corpus {
		alone[i] = NewMessageVerifier(fzCluster, pubs, nil, nil, 0).VerifyFrames([]Frame{f})[0]
	}
	// The wrappers agree with VerifyFrames of one frame.
	plain := NewMessageVerifier(fzCluster, pubs, nil, nil, 0)
	for i, f := range corpus {
		var w Verified
		switch {
		case f.ClientRequest != nil:
			w.Request, w.Err = plain.ClientRequest(f.ClientRequest)
		case f.ReplicaMessage != nil:
			w.Message, w.Err = plain.ReplicaMessage(f.ReplicaMessage)
		default:
			w.Message, w.Err = plain.ReplicaFrame(f.ReplicaFrame)
		}
		sameVerdict(t, "wrapper", i, w, alone[i])
	}
	accepted := 0
	for _, a := range alone {
		if a.Err == nil {
			accepted++
		}
	}
	if accepted == 0 || accepted == len(corpus) {
		t.Fatalf("corpus has %d accepted of %d frames; want a mix", accepted, len(corpus))
	}
	pool := verifypool.New(fzCluster, 2)
	defer pool.Close()
	cached := NewMessageVerifier(fzCluster, pubs, crypto.NewVerifiedCache(256), pool, 0)
	rng := rand.New(rand.NewSource(1))
	for round := range 60 {
		idx := rng.Perm(len(corpus))[:1+rng.Intn(len(corpus))]
		frames := make([]Frame, len(idx))
		for k, i := range idx {
			frames[k] = corpus[i]
		}
		for _, v := range []*MessageVerifier{plain, cached} {
			got := v.VerifyFrames(frames)
			for k, i := range idx {
				sameVerdict(t, fmt.Sprintf("round %d", round), i, got[k], alone[i])
			}
		}
	}
}

// TestVerifyFramesChecksEachClientRequestOnce: with a cache, a request the
// replica saw from its client is not checked again inside a pre-prepare,
// and a frame whose replica signature is bad costs no client checks.
func TestVerifyFramesChecksEachClientRequestOnce(t *testing.T) {
	pubs := fzPublicKeys()
	cache := crypto.NewVerifiedCache(64)
	v := NewMessageVerifier(fzCluster, pubs, cache, nil, 0)
	batch := fzBatch(t)
	for _, r := range batch {
		if _, err := v.ClientRequest(r); err != nil {
			t.Fatal(err)
		}
	}
	if cache.Len() != len(batch) {
		t.Fatalf("cache holds %d requests, want %d", cache.Len(), len(batch))
	}
	// Every pending request of the pre-prepare is vouched for: no job.
	var p pendingFrame
	var outer []crypto.VerifyJob
	frame := fzFrame(t, 0, fzValidBodies(t)["pre_prepare"])
	var rf wire.ReplicaFrame
	if err := proto.Unmarshal(frame, &rf); err != nil {
		t.Fatal(err)
	}
	v.decodeReplica(&p, rf.Message, rf.Batch, &outer)
	var jobs []crypto.VerifyJob
	p.requests.queue(&jobs, nil)
	if len(outer) != 1 || len(jobs) != 0 {
		t.Fatalf("%d replica and %d client signatures queued; want 1 and 0", len(outer), len(jobs))
	}
	if _, err := v.ReplicaFrame(frame); err != nil {
		t.Fatal(err)
	}
}

// benchPrePrepare is a pre-prepare frame from replica 0 carrying size
// requests of 8 clients (16-byte keys and values, as the throughput
// benchmark sends).
func benchPrePrepare(b *testing.B, size int) []byte {
	b.Helper()
	batch := make([]*wire.Signed, size)
	for i := range batch {
		c := i % 8
		key := fzKey('b', byte(c))
		op := fmt.Appendf(nil, "put key-%012d val-%012d", i, i)
		payload := fzMarshal(b, &wire.Request{ClientId: key.Public().(ed25519.PublicKey), RequestNumber: uint64(1_700_000_000_000_000_000 + i), Operation: op})
		batch[i] = &wire.Signed{Payload: payload, Signature: crypto.NewSigner(key, fzCluster).Sign(crypto.DomainClientRequest, payload)}
	}
	d := crypto.BatchDigest(batch)
	body := &wire.ReplicaMessage{From: 0, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{Sequence: 1, Digest: d[:]}}}
	payload := fzMarshal(b, body)
	sig := crypto.NewSigner(fzReplicaKey(0), fzCluster).Sign(crypto.DomainReplicaMessage, payload)
	return fzMarshal(b, &wire.ReplicaFrame{Message: &wire.Signed{Payload: payload, Signature: sig}, Batch: batch})
}

// BenchmarkVerifyPrePrepare: what a backup spends on a pre-prepare whose
// requests it has not seen (no cache hits): decoding, the digest, and
// 1+size signatures, on the calling goroutine.
func BenchmarkVerifyPrePrepare(b *testing.B) {
	for _, size := range []int{1, 8, 32, 64, 256} {
		b.Run(fmt.Sprintf("requests=%d", size), func(b *testing.B) {
			frame := benchPrePrepare(b, size)
			v := NewMessageVerifier(fzCluster, fzPublicKeys(), nil, nil, 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.ReplicaFrame(frame); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(size+1)), "ns/sig")
		})
	}
}

// TestVerifyFramesQueuesARequestOnce: a request that comes from its client
// and inside a pre-prepare in the same set of frames is checked once.
func TestVerifyFramesQueuesARequestOnce(t *testing.T) {
	v := NewMessageVerifier(fzCluster, fzPublicKeys(), crypto.NewVerifiedCache(64), nil, 0)
	frame := fzFrame(t, 0, fzValidBodies(t)["pre_prepare"])
	batch := fzBatch(t)
	var rf wire.ReplicaFrame
	if err := proto.Unmarshal(frame, &rf); err != nil {
		t.Fatal(err)
	}
	var pp, client pendingFrame
	var outer []crypto.VerifyJob
	v.decodeReplica(&pp, rf.Message, rf.Batch, &outer)
	client.requests, client.err = v.decodeRequests([]*wire.Signed{batch[0]}, new(crypto.RequestChecker))
	if client.err != nil || pp.err != nil || pp.after != nil {
		t.Fatal(client.err, pp.err, pp.after)
	}
	var jobs []crypto.VerifyJob
	seen := make(map[crypto.Digest]int)
	client.requests.queue(&jobs, seen)
	pp.requests.queue(&jobs, seen)
	if len(jobs) != len(batch) {
		t.Fatalf("%d client signatures queued for %d distinct requests", len(jobs), len(batch))
	}
	// And the verdicts are those of each frame alone.
	got := v.VerifyFrames([]Frame{{ClientRequest: batch[0]}, {ReplicaFrame: frame}})
	if got[0].Err != nil || got[1].Err != nil || len(got[1].Message.Requests) != len(batch) {
		t.Fatalf("verdicts %+v", got)
	}
}
