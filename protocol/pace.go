package protocol

// Per-key pacing of large requests on the primary.
//
// MaxLargeInFlightBytes keeps a burst of large requests from filling the
// pipeline, but a key that keeps megabyte requests queued still has one
// ordered after another, and every one costs each replica its transfer,
// signature check, synced log write and execution: one key's large puts
// at the pipeline's full speed took the honest clients' throughput to
// half. So the primary also paces each client key's large requests: a key
// earns largePaceBytesPerTick bytes of ordering per tick, up to a burst
// of largePaceBurst, and a large request of a key whose allowance is
// spent waits in the queue (the requests behind it are batched meanwhile).
// A request may take the allowance below zero, so a request of any
// allowed size goes once the key's allowance is positive, and the key then
// waits until it is paid back.
//
// The pace is above the rate at which a backup's view-change timer credits
// large bytes ordered (orderCreditBytesPerTick): a primary pacing a burst
// of one key's large requests that a backup also holds is never suspected
// for it. Honest small requests are never paced.
const largePaceBytesPerTick = 2 * orderCreditBytesPerTick

// largePaceBurst is the large-request bytes a key may have ordered at
// once before its pace applies (about one full batch).
const largePaceBurst = 4 << 20

// largePaceKeys bounds the keys whose allowance is remembered; a key
// whose allowance is back to the full burst needs no entry, so those are
// dropped first when the map is full.
const largePaceKeys = 4096

// largePace is the primary's per-key allowance of large-request bytes.
type largePace struct {
	burst int64
	keys  map[string]*paceState
}

type paceState struct {
	allowance int64
	tick      uint64 // when allowance was last brought up to date
}

func newLargePace(burst int) *largePace {
	return &largePace{burst: int64(burst), keys: make(map[string]*paceState)}
}

// refilled returns key's allowance at tick now.
func (p *largePace) refilled(key string, now uint64) int64 {
	s, ok := p.keys[key]
	if !ok {
		return p.burst
	}
	earned := int64(now-s.tick) * largePaceBytesPerTick
	return min(p.burst, s.allowance+earned)
}

// admits reports whether a large request of key may be ordered at tick now.
func (p *largePace) admits(key string, now uint64) bool {
	return p.refilled(key, now) > 0
}

// charge takes n bytes from key's allowance at tick now.
func (p *largePace) charge(key string, n int, now uint64) {
	allowance := p.refilled(key, now) - int64(n)
	if s, ok := p.keys[key]; ok {
		s.allowance, s.tick = allowance, now
		return
	}
	if len(p.keys) >= largePaceKeys {
		p.forgetFull(now)
	}
	if len(p.keys) >= largePaceKeys {
		return // every remembered key is paying back: this one goes unpaced
	}
	p.keys[key] = &paceState{allowance: allowance, tick: now}
}

// forgetFull drops the keys whose allowance is back to the full burst.
func (p *largePace) forgetFull(now uint64) {
	for k := range p.keys {
		if p.refilled(k, now) >= p.burst {
			delete(p.keys, k)
		}
	}
}
