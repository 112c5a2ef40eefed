package protocol

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/wire"
)

// forged returns body from replica from with an invalid signature.
func forged(t *testing.T, from uint32, body *wire.ReplicaMessage) *wire.Signed {
	t.Helper()
	body.From = from
	payload, err := proto.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return &wire.Signed{Payload: payload, Signature: make([]byte, ed25519.SignatureSize)}
}

// A COMMIT that its author's own session delivered (Frame.Sender is the
// author's key) counts without a signature check; the same COMMIT from
// any other session, or read back without a sender, is checked as before,
// and so is every other kind of message from its author's session.
// CheckDirectCommits(true) turns the exception off.
func TestCommitsFromTheirAuthorsSessionNeedNoSignature(t *testing.T) {
	c := newCluster(t, 4, nil)
	pubs := make([]ed25519.PublicKey, 4)
	for i := range pubs {
		pubs[i] = testKey(byte(i)).Public().(ed25519.PublicKey)
	}
	pool := &countingPool{v: crypto.NewVerifier(testCluster)}
	v := NewMessageVerifier(testCluster, pubs, nil, pool, 0)
	var d crypto.Digest
	badCommit := forged(t, 1, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Commit{Commit: &wire.Commit{View: 0, Sequence: 1, Digest: d[:]}}})
	badPrepare := forged(t, 1, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Prepare{Prepare: &wire.Prepare{View: 0, Sequence: 1, Digest: d[:]}}})
	good := commit(c, 1, 0, 1, d).Signed

	cases := []struct {
		name      string
		frame     Frame
		byChannel bool // else: ErrBadSignature, or accepted checked for good
		checks    int64
	}{
		{"commit from its author's session", Frame{ReplicaMessage: badCommit, Sender: pubs[1]}, true, 0},
		{"commit relayed by another replica", Frame{ReplicaMessage: badCommit, Sender: pubs[2]}, false, 1},
		{"commit without a sender", Frame{ReplicaMessage: badCommit}, false, 1},
		{"commit with a truncated sender", Frame{ReplicaMessage: badCommit, Sender: pubs[1][:31]}, false, 1},
		{"prepare from its author's session", Frame{ReplicaMessage: badPrepare, Sender: pubs[1]}, false, 1},
		{"signed commit relayed", Frame{ReplicaMessage: good, Sender: pubs[3]}, false, 1},
	}
	for _, tc := range cases {
		before := pool.jobs.Load()
		out := v.VerifyFrames([]Frame{tc.frame})[0]
		if got := pool.jobs.Load() - before; got != tc.checks {
			t.Errorf("%s: %d signatures checked, want %d", tc.name, got, tc.checks)
		}
		switch {
		case tc.byChannel:
			if out.Err != nil || !out.Message.ByChannel {
				t.Errorf("%s: err %v, by channel %v; want accepted by channel", tc.name, out.Err, out.Message.ByChannel)
			}
		case tc.frame.ReplicaMessage == good:
			if out.Err != nil || out.Message.ByChannel {
				t.Errorf("%s: err %v, by channel %v; want accepted, checked", tc.name, out.Err, out.Message.ByChannel)
			}
		case !errors.Is(out.Err, ErrBadSignature):
			t.Errorf("%s: err %v, want ErrBadSignature", tc.name, out.Err)
		}
	}
	v.CheckDirectCommits(true)
	if out := v.VerifyFrames([]Frame{{ReplicaMessage: badCommit, Sender: pubs[1]}})[0]; !errors.Is(out.Err, ErrBadSignature) {
		t.Fatalf("with CheckDirectCommits: err %v, want ErrBadSignature", out.Err)
	}
}

// A replica relays in its Fetch answers only the COMMITs whose signatures
// it checked: those it counted on their author's session's word go once
// Config.RelayCheck passed them (each checked once, however often asked),
// never one whose signature is bad (its author is faulty; a correct
// replica that relayed it would look faulty to the asker). Without a
// RelayCheck only checked COMMITs and the replica's own are relayed.
func TestCommitsTakenByChannelAreRelayedOnlyChecked(t *testing.T) {
	for _, withCheck := range []bool{true, false} {
		var c *cluster
		checks, calls := 0, 0
		c = newCluster(t, 4, func(cfg *Config) {
			if withCheck {
				cfg.RelayCheck = func(signed []*wire.Signed) []bool {
					calls++
					ok := make([]bool, len(signed))
					for i, s := range signed {
						checks++
						_, err := c.verifier.ReplicaMessage(s)
						ok[i] = err == nil
					}
					return ok
				}
			}
		})
		backup, d := backupWithPrePrepareIn(t, c)
		for _, from := range []uint32{2, 3} {
			if err := backup.Step(prepare(c, from, 0, 1, d)); err != nil {
				t.Fatal(err)
			}
		}
		good := commit(c, 2, 0, 1, d)
		good.ByChannel = true
		bad := commit(c, 3, 0, 1, d)
		bad.Signed = &wire.Signed{Payload: bad.Signed.Payload, Signature: make([]byte, ed25519.SignatureSize)}
		bad.ByChannel = true
		for _, m := range []VerifiedMessage{good, bad} {
			if err := backup.Step(m); err != nil {
				t.Fatal(err)
			}
		}
		if rd := backup.Ready(); len(rd.Committed) != 1 {
			t.Fatalf("check %v: %d batches committed, want 1 (own COMMIT and two by channel)", withCheck, len(rd.Committed))
		}
		for round := range 2 {
			fetch := c.signedBy(0, &wire.ReplicaMessage{Body: &wire.ReplicaMessage_Fetch{Fetch: &wire.Fetch{View: 0, ViewActive: true}}})
			if err := backup.Step(fetch); err != nil {
				t.Fatalf("round %d: Fetch refused: %v", round, err)
			}
			var relayed []uint32
			for _, out := range backup.Ready().Messages {
				if out.Kind == KindCommit {
					m := c.decode(out)
					relayed = append(relayed, m.Body.From)
				}
			}
			want := []uint32{1}
			if withCheck {
				want = []uint32{1, 2}
			}
			if !slices.Equal(relayed, want) {
				t.Fatalf("check %v, round %d: COMMITs of %v relayed, want %v", withCheck, round, relayed, want)
			}
			for range backup.Config().RetransmitTicks {
				backup.Tick()
			}
			backup.Ready()
		}
		st := backup.Status()
		if st.CommitsByChannel != 2 {
			t.Fatalf("check %v: %d COMMITs by channel, want 2", withCheck, st.CommitsByChannel)
		}
		if withCheck && (checks != 2 || calls != 1 || st.RelayRefused != 1) {
			t.Fatalf("%d relay checks in %d calls and %d refused over two Fetches, want 2 in 1 and 1", checks, calls, st.RelayRefused)
		}
	}
}
