package protocol

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/verifypool"
	"github.com/pbftnode/pbftnode/wire"
)

// The fuzz targets use keys derived from fixed seeds, so the signed seed
// frames (and the committed corpus under testdata/fuzz) stay valid.

const (
	fzCluster  = "fuzz-cluster"
	fzReplicas = 4
)

func fzKey(kind, i byte) ed25519.PrivateKey {
	var s [ed25519.SeedSize]byte
	s[0], s[1], s[2] = 'f', kind, i
	return ed25519.NewKeyFromSeed(s[:])
}

func fzReplicaKey(i int) ed25519.PrivateKey { return fzKey('r', byte(i)) }
func fzClientKey(i int) ed25519.PrivateKey  { return fzKey('c', byte(i)) }

// fzClients is how many client keys the fuzz harness controls.
const fzClients = 2

func fzPublicKeys() []ed25519.PublicKey {
	pubs := make([]ed25519.PublicKey, fzReplicas)
	for i := range pubs {
		pubs[i] = fzReplicaKey(i).Public().(ed25519.PublicKey)
	}
	return pubs
}

func fzMarshal(tb testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		if tb == nil {
			panic(err) // generated messages always marshal
		}
		tb.Fatalf("marshal: %v", err)
	}
	return b
}

// fzRequest is a client request signed by controlled client c.
func fzRequest(tb testing.TB, c int, number uint64, op string) *wire.Signed {
	key := fzClientKey(c)
	payload := fzMarshal(tb, &wire.Request{ClientId: key.Public().(ed25519.PublicKey), RequestNumber: number, Operation: []byte(op)})
	return &wire.Signed{Payload: payload, Signature: crypto.NewSigner(key, fzCluster).Sign(crypto.DomainClientRequest, payload)}
}

// fzFrame signs body as replica from and encodes the frame.
func fzFrame(tb testing.TB, from uint32, body *wire.ReplicaMessage) []byte {
	body.From = from
	payload := fzMarshal(tb, body)
	sig := crypto.NewSigner(fzReplicaKey(int(from)), fzCluster).Sign(crypto.DomainReplicaMessage, payload)
	var batch []*wire.Signed
	if pp := body.GetPrePrepare(); pp != nil {
		if d := crypto.BatchDigest(fzBatch(tb)); string(pp.Digest) == string(d[:]) {
			batch = fzBatch(tb)
		}
	}
	return fzMarshal(tb, &wire.ReplicaFrame{Message: &wire.Signed{Payload: payload, Signature: sig}, Batch: batch})
}

// fzBatch is the batch the seeded pre-prepares carry beside them.
func fzBatch(tb testing.TB) []*wire.Signed {
	return []*wire.Signed{fzRequest(tb, 0, 1, "put a 1"), fzRequest(tb, 1, 7, "get a")}
}

// fzValidBodies returns one valid message of each type, unsigned (From set).
func fzValidBodies(tb testing.TB) map[string]*wire.ReplicaMessage {
	d := crypto.BatchDigest(fzBatch(tb))
	digest := append([]byte(nil), d[:]...)
	state := make([]byte, 32)
	state[0] = 1
	return map[string]*wire.ReplicaMessage{
		"pre_prepare": {From: 0, Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{View: 0, Sequence: 1, Digest: digest}}},
		"prepare":     {From: 1, Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: 0, Sequence: 1, Digest: digest}}},
		"commit":      {From: 2, Body: &wire.ReplicaMessage_Commit{Commit: &wire.Commit{View: 0, Sequence: 1, Digest: digest}}},
		"checkpoint":  {From: 3, Body: &wire.ReplicaMessage_Checkpoint{Checkpoint: &wire.Checkpoint{Sequence: DefaultCheckpointInterval, StateDigest: state}}},
		"forward":     {From: 1, Body: &wire.ReplicaMessage_ForwardedRequest{ForwardedRequest: fzRequest(tb, 0, 2, "delete a")}},
	}
}

// fzGarbage are invalid frames worth seeding.
func fzGarbage(tb testing.TB) [][]byte {
	bodies := fzValidBodies(tb)
	pp := fzFrame(tb, 0, bodies["pre_prepare"])
	badSig := append([]byte(nil), pp...)
	badSig[len(badSig)-1] ^= 1
	unknown := fzMarshal(tb, &wire.ReplicaFrame{Message: &wire.Signed{Payload: fzMarshal(tb, &wire.ReplicaMessage{From: 9}), Signature: make([]byte, 64)}})
	huge := fzMarshal(tb, &wire.ReplicaFrame{Message: &wire.Signed{Payload: fzMarshal(tb, &wire.ReplicaMessage{From: 1 << 31}), Signature: make([]byte, 64)}})
	return [][]byte{
		nil,
		{0x00},
		{0xff, 0xff, 0xff, 0xff},
		{0x0a, 0x80}, // truncated length
		badSig,
		unknown,
		huge,
		fzFrame(tb, 2, &wire.ReplicaMessage{}), // no body
		fzFrame(tb, 1, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_ForwardedRequest{ForwardedRequest: &wire.Signed{}}}),
		fzFrame(tb, 0, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{Sequence: 1, Digest: []byte{1}}}}), // digest does not match the batch
	}
}

// fzEdge are frames that verify but that Step must refuse.
func fzEdge(tb testing.TB) [][]byte {
	return [][]byte{
		fzFrame(tb, 1, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{}}}),
		fzFrame(tb, 2, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Commit{Commit: &wire.Commit{Sequence: 1 << 62, Digest: make([]byte, 32)}}}),
		fzFrame(tb, 3, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Checkpoint{Checkpoint: &wire.Checkpoint{Sequence: 3}}}),
		// A null request from a backup (null requests are valid pre-prepares:
		// an ending epoch's primary fills with them).
		fzFrame(tb, 2, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_PrePrepare{PrePrepare: &wire.PrePrepare{Sequence: 1, Digest: fzNullDigest()}}}),
	}
}

func fzNullDigest() []byte {
	d := crypto.BatchDigest(nil)
	return d[:]
}

// checkAccepted asserts what ReplicaFrame promises for an accepted frame.
func checkAccepted(t *testing.T, frame []byte, m VerifiedMessage) {
	t.Helper()
	if m.Body == nil || m.Signed == nil {
		t.Fatalf("accepted frame %x with a nil body or signed frame", frame)
	}
	if m.Body.From >= fzReplicas {
		t.Fatalf("accepted a message from replica %d of %d", m.Body.From, fzReplicas)
	}
	if !crypto.Verify(fzReplicaKey(int(m.Body.From)).Public().(ed25519.PublicKey), fzCluster, crypto.DomainReplicaMessage, m.Signed.Payload, m.Signed.Signature) {
		t.Fatalf("accepted a message replica %d did not sign", m.Body.From)
	}
	switch b := m.Body.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		if b.PrePrepare == nil {
			t.Fatal("accepted a nil pre-prepare")
		}
		if len(m.Requests) != len(m.Batch) {
			t.Fatalf("pre-prepare with %d requests decoded to %d", len(m.Batch), len(m.Requests))
		}
		if d := crypto.BatchDigest(m.Batch); string(d[:]) != string(b.PrePrepare.Digest) {
			t.Fatal("accepted a pre-prepare whose batch does not match its digest")
		}
		if len(m.Requests) > DefaultMaxBatchSize {
			t.Fatalf("accepted a batch of %d requests", len(m.Requests))
		}
		for i, r := range m.Requests {
			if r == nil || len(r.ClientId) != ed25519.PublicKeySize {
				t.Fatalf("pre-prepare request %d decoded to %v", i, r)
			}
		}
	case *wire.ReplicaMessage_ForwardedRequest:
		if len(m.Requests) != 1 || m.Requests[0] == nil {
			t.Fatalf("forwarded request decoded to %d requests", len(m.Requests))
		}
	case *wire.ReplicaMessage_Prepare:
		if b.Prepare == nil {
			t.Fatal("accepted a nil prepare")
		}
	case *wire.ReplicaMessage_Commit:
		if b.Commit == nil {
			t.Fatal("accepted a nil commit")
		}
	case *wire.ReplicaMessage_Checkpoint:
		if b.Checkpoint == nil {
			t.Fatal("accepted a nil checkpoint")
		}
	default:
		// Other message types carry no requests; the sender and signature
		// checks above apply to them too.
		if len(m.Requests) != 0 {
			t.Fatalf("%T decoded to %d requests", b, len(m.Requests))
		}
	}
}

func FuzzReplicaFrame(f *testing.F) {
	bodies := fzValidBodies(f)
	for _, name := range []string{"pre_prepare", "prepare", "commit", "checkpoint", "forward"} {
		body := bodies[name]
		f.Add(fzFrame(f, body.From, body))
	}
	for _, g := range append(fzGarbage(f), fzEdge(f)...) {
		f.Add(g)
	}
	pubs := fzPublicKeys()
	plain := NewMessageVerifier(fzCluster, pubs, nil, nil, 0)
	pool := verifypool.New(fzCluster, 2)
	f.Cleanup(pool.Close)
	cached := NewMessageVerifier(fzCluster, pubs, crypto.NewVerifiedCache(64), pool, 0)

	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := plain.ReplicaFrame(frame)
		if err == nil {
			checkAccepted(t, frame, m)
		}
		// The cache and the worker pool must not change the verdict. Run
		// twice so the second pass takes the cached path.
		for pass := range 2 {
			m2, err2 := cached.ReplicaFrame(frame)
			if (err == nil) != (err2 == nil) {
				t.Fatalf("pass %d: plain verifier err=%v, cached verifier err=%v", pass, err, err2)
			}
			if err2 == nil {
				checkAccepted(t, frame, m2)
			}
		}
	})
}

// fzResign rewrites an arbitrary ReplicaMessage payload into a frame that
// passes signature checks where the harness holds the key: it signs the
// body as replica From, and re-signs each client request whose client id
// is a controlled client's. This lets the fuzzer reach Step with messages
// it could never sign itself.
func fzResign(data []byte) ([]byte, bool) {
	var body wire.ReplicaMessage
	if proto.Unmarshal(data, &body) != nil || body.From >= fzReplicas {
		return nil, false
	}
	resign := func(s *wire.Signed) {
		var req wire.Request
		if s == nil || proto.Unmarshal(s.Payload, &req) != nil {
			return
		}
		for c := range fzClients {
			key := fzClientKey(c)
			if string(req.ClientId) == string(key.Public().(ed25519.PublicKey)) {
				s.Signature = crypto.NewSigner(key, fzCluster).Sign(crypto.DomainClientRequest, s.Payload)
			}
		}
	}
	var batch []*wire.Signed
	switch b := body.Body.(type) {
	case *wire.ReplicaMessage_PrePrepare:
		// Attach the seeded batch and bind it, so fuzzed headers reach Step.
		if b.PrePrepare != nil {
			batch = fzBatch(nil)
			for _, s := range batch {
				resign(s)
			}
			d := crypto.BatchDigest(batch)
			b.PrePrepare.Digest = d[:]
		}
	case *wire.ReplicaMessage_ForwardedRequest:
		resign(b.ForwardedRequest)
	}
	payload, err := proto.Marshal(&body)
	if err != nil {
		return nil, false
	}
	sig := crypto.NewSigner(fzReplicaKey(int(body.From)), fzCluster).Sign(crypto.DomainReplicaMessage, payload)
	frame, err := proto.Marshal(&wire.ReplicaFrame{Message: &wire.Signed{Payload: payload, Signature: sig}, Batch: batch})
	return frame, err == nil
}

// fzReplica is a fresh replica of the fuzz cluster; small windows make the
// watermark and future-buffer paths reachable.
func fzReplica(t *testing.T, id uint32, small bool) *Replica {
	cfg := Config{ID: id, N: fzReplicas, Signer: crypto.NewSigner(fzReplicaKey(int(id)), fzCluster)}
	if small {
		cfg.CheckpointInterval, cfg.WindowSize, cfg.MaxBatchSize = 2, 4, 4
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func FuzzStep(f *testing.F) {
	bodies := fzValidBodies(f)
	for _, name := range []string{"pre_prepare", "prepare", "commit", "checkpoint", "forward"} {
		body := bodies[name]
		f.Add(fzFrame(f, body.From, body))
		f.Add(fzMarshal(f, body)) // a bare payload, for the re-signing path
	}
	for _, g := range append(fzGarbage(f), fzEdge(f)...) {
		f.Add(g)
	}
	verifier := NewMessageVerifier(fzCluster, fzPublicKeys(), nil, nil, 0)

	f.Fuzz(func(t *testing.T, data []byte) {
		var frames [][]byte
		frames = append(frames, data)
		if resigned, ok := fzResign(data); ok {
			frames = append(frames, resigned)
		}
		for _, frame := range frames {
			m, err := verifier.ReplicaFrame(frame)
			if err != nil {
				continue
			}
			for _, id := range []uint32{0, 1, 3} {
				for _, small := range []bool{false, true} {
					r := fzReplica(t, id, small)
					_ = r.Step(m)
					st := r.Status()
					rd := r.Ready()
					if st.LastCommitted != 0 || len(rd.Committed) != 0 {
						t.Fatalf("replica %d (small=%v) committed %d after one %T", id, small, st.LastCommitted, m.Body.Body)
					}
					if rd.StableCheckpoint != nil || rd.Behind != nil || st.LowWatermark != 0 {
						t.Fatalf("replica %d (small=%v): one message made a checkpoint stable", id, small)
					}
					if st.View != 0 {
						t.Fatalf("replica %d: one message moved the view to %d", id, st.View)
					}
					for _, out := range rd.Messages {
						if out.Signed == nil || (out.To != Broadcast && out.To >= fzReplicas) {
							t.Fatalf("replica %d sent %v to %d", id, out.Kind, out.To)
						}
					}
				}
			}
		}
	})
}

// TestFuzzSeedsAreValid keeps the fuzz seeds meaningful: the valid frames
// verify, the re-signing path accepts bare payloads, and a seeded
// pre-prepare reaches the core (a backup answers it with a prepare).
func TestFuzzSeedsAreValid(t *testing.T) {
	v := NewMessageVerifier(fzCluster, fzPublicKeys(), nil, nil, 0)
	for name, body := range fzValidBodies(t) {
		m, err := v.ReplicaFrame(fzFrame(t, body.From, body))
		if err != nil {
			t.Fatalf("%s seed does not verify: %v", name, err)
		}
		checkAccepted(t, nil, m)
		resigned, ok := fzResign(fzMarshal(t, body))
		if !ok {
			t.Fatalf("%s payload not re-signed", name)
		}
		if _, err := v.ReplicaFrame(resigned); err != nil {
			t.Fatalf("%s re-signed payload does not verify: %v", name, err)
		}
	}
	for i, g := range fzGarbage(t) {
		if m, err := v.ReplicaFrame(g); err == nil {
			t.Fatalf("garbage seed %d accepted: %v", i, m.Body)
		}
	}
	for i, e := range fzEdge(t) {
		m, err := v.ReplicaFrame(e)
		if err != nil {
			t.Fatalf("edge seed %d does not verify: %v", i, err)
		}
		if err := fzReplica(t, 1, false).Step(m); err == nil {
			t.Fatalf("edge seed %d (%v) accepted by Step", i, m.Body)
		}
	}
	body := fzValidBodies(t)["pre_prepare"]
	m, err := v.ReplicaFrame(fzFrame(t, 0, body))
	if err != nil {
		t.Fatal(err)
	}
	r := fzReplica(t, 1, false)
	if err := r.Step(m); err != nil {
		t.Fatalf("backup refused the seeded pre-prepare: %v", err)
	}
	rd := r.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Kind != KindPrepare {
		t.Fatalf("backup sent %v after the pre-prepare; want one prepare", rd.Messages)
	}
	if st := r.Status(); st.LastCommitted != 0 {
		t.Fatalf("a pre-prepare alone committed %d", st.LastCommitted)
	}
}

// TestFuzzCorpusValidFramesStillVerify keeps the committed corpus useful:
// its valid_* entries were signed with the fz keys and must still verify,
// or they only exercise the decoding error paths.
func TestFuzzCorpusValidFramesStillVerify(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzReplicaFrame", "valid_*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no valid_* entries in the FuzzReplicaFrame corpus")
	}
	v := NewMessageVerifier(fzCluster, fzPublicKeys(), nil, nil, 0)
	for _, file := range files {
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(content)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a one-value go test fuzz v1 file", file)
		}
		quoted, ok := strings.CutPrefix(lines[1], "[]byte(")
		if !ok {
			t.Fatalf("%s: value is not a []byte", file)
		}
		frame, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		m, err := v.ReplicaFrame([]byte(frame))
		if err != nil {
			t.Fatalf("%s no longer verifies: %v", file, err)
		}
		checkAccepted(t, []byte(frame), m)
	}
}
