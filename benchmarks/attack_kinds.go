package benchmarks

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"golang.org/x/time/rate"

	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/p2p"
)

// The attacks' fixed shapes, as issue 15 measured them.
const (
	burstRequests    = 300     // requests in one big burst
	burstValueBytes  = 1 << 20 // each one's value
	burstPerSession  = 50      // requests per session, within the replicas' per-client window of 64
	floodKeepStreams = 16      // client-flood: open streams kept per replica (older ones are reset)
	garbageKeyCount  = 8       // garbage-client: keys sending at once
	garbageMaxBytes  = 64      // garbage-client: the largest garbage frame
	garbageBatch     = 1024    // garbage-client: frames per write
	slowStreams      = 32      // slowloris: stalled streams
	slowClaim        = p2p.DefaultMaxFrameSize
	slowChunk        = 64 << 10
	replayCount      = 1000    // non-reading-client: replays of the get
	bigValueBytes    = 1 << 20 // non-reading-client: the value it gets
	replyWait        = 10 * time.Second
)

// bigBurst: bursts of burstRequests signed 1 MiB puts to the target, the
// first signed before the attack starts, each next one while the previous
// one's pause lasts.
func (a *attacker) bigBurst(ctx context.Context, t *attackTimer) error {
	h, err := a.newHost(a.key)
	if err != nil {
		return err
	}
	defer a.closeOnDone(ctx, h)()
	s, err := a.openStream(ctx, h, a.cfg.Target)
	if err != nil {
		return err
	}
	go a.readReplies(s)
	value := a.randBytes(burstValueBytes)
	burst, err := a.signBurst(0, value)
	if err != nil {
		return err
	}
	if !t.begin(ctx) {
		return nil
	}
	interval := time.Duration(float64(time.Second) / a.cfg.Rate)
	for round := 1; ctx.Err() == nil; round++ {
		began := time.Now()
		for _, f := range burst {
			if ctx.Err() != nil {
				return nil
			}
			if a.writeFrame(s, f) != nil {
				_ = s.Reset()
				if s, err = a.openStream(ctx, h, a.cfg.Target); err != nil {
					return nil
				}
				go a.readReplies(s)
			}
		}
		if burst, err = a.signBurst(round, value); err != nil {
			return err
		}
		if sleepUntil(ctx, began.Add(interval)) != nil {
			return nil
		}
	}
	return nil
}

// signBurst signs one burst: burstRequests puts of value under fresh
// keys, burstPerSession to a session.
func (a *attacker) signBurst(round int, value []byte) ([][]byte, error) {
	out := make([][]byte, 0, burstRequests)
	var sess *session
	for i := range burstRequests {
		if i%burstPerSession == 0 {
			var err error
			if sess, err = a.newSession(a.key); err != nil {
				return nil, err
			}
		}
		f := sess.request(execution.EncodePut(fmt.Appendf(nil, "burst-%d-%d", round, i), value))
		out = append(out, f)
	}
	return out, nil
}

// clientFlood: a new session of the testnet's key Rate times a second,
// each a new stream to every replica with one signed put.
func (a *attacker) clientFlood(ctx context.Context, t *attackTimer) error {
	h, err := a.newHost(a.key)
	if err != nil {
		return err
	}
	defer a.closeOnDone(ctx, h)()
	for i := range a.members {
		s, err := a.openStream(ctx, h, i)
		if err != nil {
			return err
		}
		_ = s.Close()
	}
	if !t.begin(ctx) {
		return nil
	}
	lim := rate.NewLimiter(rate.Limit(a.cfg.Rate), 1)
	kept := make([][]network.Stream, len(a.members))
	value := a.randBytes(16)
	for k := 0; ; k++ {
		if lim.Wait(ctx) != nil {
			return nil
		}
		sess, err := a.newSession(a.key)
		if err != nil {
			return err
		}
		frame := sess.request(execution.EncodePut(fmt.Appendf(nil, "flood-%d", k), value))
		for i := range a.members {
			s, err := a.openStream(ctx, h, i)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			_ = a.writeFrame(s, frame)
			kept[i] = append(kept[i], s)
			if len(kept[i]) > floodKeepStreams {
				_ = kept[i][0].Reset()
				kept[i] = kept[i][1:]
			}
		}
	}
}

// garbageKey is one unknown key of the garbage attack and its streams,
// one per replica (nil until opened, and again after a failed write).
type garbageKey struct {
	h       host.Host
	close   func() // closes h; h is also closed when the attack ends
	sess    *session
	streams []network.Stream
	op      []byte // the operation of its requests
	badSig  []byte // the random signature they carry
}

// newGarbageKey makes a fresh key no replica has seen.
func (a *attacker) newGarbageKey(ctx context.Context) (*garbageKey, error) {
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("attack: %w", err)
	}
	h, err := a.newHost(key)
	if err != nil {
		return nil, err
	}
	sess, err := a.newSession(key)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return &garbageKey{h: h, close: a.closeOnDone(ctx, h), sess: sess, streams: make([]network.Stream, len(a.members)),
		op: execution.EncodePut([]byte("garbage"), a.randBytes(16)), badSig: a.randBytes(64)}, nil
}

// garbageClient: Rate frames a second from unknown keys, alternately
// random bytes and requests with random signatures, over every replica;
// the oldest key is replaced by a fresh one every second.
func (a *attacker) garbageClient(ctx context.Context, t *attackTimer) error {
	keys := make([]*garbageKey, 0, garbageKeyCount)
	defer func() {
		for _, k := range keys {
			k.close()
		}
	}()
	for range garbageKeyCount {
		k, err := a.newGarbageKey(ctx)
		if err != nil {
			return err
		}
		keys = append(keys, k)
		for i := range a.members {
			if k.streams[i], err = a.openStream(ctx, k.h, i); err != nil {
				return err
			}
		}
	}
	if !t.begin(ctx) {
		return nil
	}
	lim := rate.NewLimiter(rate.Limit(a.cfg.Rate), max(garbageBatch, int(a.cfg.Rate/100)))
	lastRotation := time.Now()
	for i := 0; ; i++ {
		if lim.WaitN(ctx, garbageBatch) != nil {
			return nil
		}
		if time.Since(lastRotation) >= time.Second {
			lastRotation = time.Now()
			fresh, err := a.newGarbageKey(ctx)
			if err != nil {
				return err
			}
			keys[0].close()
			keys = append(keys[1:], fresh)
		}
		k := keys[i%len(keys)]
		replica := (i / len(keys)) % len(a.members)
		if k.streams[replica] == nil {
			s, err := a.openStream(ctx, k.h, replica)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			k.streams[replica] = s
		}
		batch := make([][]byte, garbageBatch)
		for j := range batch {
			batch[j] = a.garbageFrame(k, j)
		}
		if err := a.writeFrames(k.streams[replica], batch); err != nil {
			_ = k.streams[replica].Reset()
			k.streams[replica] = nil
		}
	}
}

// garbageFrame is frame j of a garbage batch: random bytes for even j, a
// well-formed request (the key's next request number) with the key's
// random signature for odd j.
func (a *attacker) garbageFrame(k *garbageKey, j int) []byte {
	if j%2 == 0 {
		return a.randBytes(1 + a.randIntN(garbageMaxBytes))
	}
	n := k.sess.next
	k.sess.next++
	return clientFrame(requestPayload(k.sess.id, n, k.op), k.badSig)
}

// slowloris: slowStreams streams to the target each announce a frame of
// slowClaim bytes, send all of it but one byte and stall; a stream the
// replica ends is reopened. Writes share a limit of Rate bytes a second.
func (a *attacker) slowloris(ctx context.Context, t *attackTimer) error {
	h, err := a.newHost(a.key)
	if err != nil {
		return err
	}
	defer a.closeOnDone(ctx, h)()
	s, err := a.openStream(ctx, h, a.cfg.Target)
	if err != nil {
		return err
	}
	_ = s.Close()
	if !t.begin(ctx) {
		return nil
	}
	lim := rate.NewLimiter(rate.Limit(a.cfg.Rate), 4*slowChunk)
	var wg sync.WaitGroup
	for range slowStreams {
		wg.Go(func() { a.slowStream(ctx, h, lim) })
	}
	wg.Wait()
	return nil
}

// slowStream is one slowloris stream, reopened until ctx ends.
func (a *attacker) slowStream(ctx context.Context, h host.Host, lim *rate.Limiter) {
	chunk := make([]byte, slowChunk)
	for ctx.Err() == nil {
		s, err := a.openStream(ctx, h, a.cfg.Target)
		if err != nil {
			_ = sleepUntil(ctx, time.Now().Add(200*time.Millisecond))
			continue
		}
		if a.writePartial(ctx, s, lim, chunk) {
			a.tally.frames.Add(1)
			// Stall: nothing more is sent; a read returns when the
			// replica ends the stream (or the host closes).
			if _, err := s.Read(make([]byte, 1)); err != nil && ctx.Err() == nil {
				a.fail(fmt.Errorf("attack: stalled stream ended by the replica: %w", err))
			}
		}
		_ = s.Reset()
		_ = sleepUntil(ctx, time.Now().Add(100*time.Millisecond))
	}
}

// writePartial writes the length prefix of a slowClaim-byte frame and
// slowClaim-1 bytes of its body, at lim's pace. It reports whether all of
// it was written.
func (a *attacker) writePartial(ctx context.Context, s network.Stream, lim *rate.Limiter, chunk []byte) bool {
	prefix := binary.AppendUvarint(nil, slowClaim)
	if _, err := s.Write(prefix); err != nil {
		a.fail(fmt.Errorf("attack: write: %w", err))
		return false
	}
	a.tally.bytes.Add(int64(len(prefix)))
	for left := slowClaim - 1; left > 0; {
		n := min(len(chunk), left)
		if lim.WaitN(ctx, n) != nil {
			return false
		}
		if _, err := s.Write(chunk[:n]); err != nil {
			if ctx.Err() == nil {
				a.fail(fmt.Errorf("attack: write: %w", err))
			}
			return false
		}
		a.tally.bytes.Add(int64(n))
		left -= n
	}
	return true
}

// nonReading: put a 1 MiB value (reading those replies), then send every
// replica a get for it and replayCount replays of it, and never read.
func (a *attacker) nonReading(ctx context.Context, t *attackTimer) error {
	h, err := a.newHost(a.key)
	if err != nil {
		return err
	}
	defer a.closeOnDone(ctx, h)()
	sess, err := a.newSession(a.key)
	if err != nil {
		return err
	}
	streams := make([]network.Stream, len(a.members))
	for i := range a.members {
		if streams[i], err = a.openStream(ctx, h, i); err != nil {
			return err
		}
	}
	key := []byte("nonreading-" + hex.EncodeToString(sess.id[len(sess.id)-8:]))
	put := sess.request(execution.EncodePut(key, a.randBytes(bigValueBytes)))
	for _, s := range streams {
		if err := a.writeFrame(s, put); err != nil {
			return err
		}
	}
	a.awaitReplies(streams)
	get := sess.request(execution.EncodeGet(key))
	if !t.begin(ctx) {
		return nil
	}
	lim := rate.NewLimiter(rate.Limit(a.cfg.Rate), len(streams))
	for range replayCount + 1 {
		if lim.WaitN(ctx, len(streams)) != nil {
			return nil
		}
		for _, s := range streams {
			_ = a.writeFrame(s, get)
		}
	}
	<-ctx.Done()
	return nil
}

// awaitReplies reads one reply from each stream, each within replyWait,
// and then leaves the streams unread.
func (a *attacker) awaitReplies(streams []network.Stream) {
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() {
			_ = s.SetReadDeadline(time.Now().Add(replyWait))
			defer s.SetReadDeadline(time.Time{})
			if _, err := p2p.ReadFrame(bufio.NewReader(s), 2*p2p.DefaultMaxFrameSize); err != nil {
				a.fail(fmt.Errorf("attack: reply to the put: %w", err))
				return
			}
			a.tally.replies.Add(1)
		})
	}
	wg.Wait()
}
