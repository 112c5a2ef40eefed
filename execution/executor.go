package execution

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pbftnode/pbftnode/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

const (
	executorLastKey     = storage.PrefixExecutor + "last"
	executorReplyPrefix = storage.PrefixExecutor + "reply/"
	replyEntryDomain    = "pbftnode/v1/reply-entry"
	stateDigestDomain   = "pbftnode/v1/state"
	// MaxClientIDSize bounds a request's client ID; requests with an empty
	// or longer ID are skipped (deterministically, on every replica).
	MaxClientIDSize = 256
)

// Request is one client request of a committed batch.
type Request struct {
	ClientID      []byte
	RequestNumber uint64
	Operation     []byte
}

// Reply is the result of a request, to be sent to the client.
type Reply struct {
	ClientID      []byte
	RequestNumber uint64
	Result        []byte
}

type cachedReply struct {
	number uint64
	result []byte
}

// Executor applies committed batches in strict sequence order, each client
// request exactly once, and keeps the last reply per client (the reply
// cache) so a retransmitted request gets the cached reply.
//
// With a BatchApplication, each Apply is crash-atomic (see the package
// documentation). With a plain Application, the application's own writes
// are outside the executor's batch; such applications suit in-memory use
// (the simulator) where a restart also starts from an empty database.
//
// An error from Apply other than a sequence mismatch means storage failed:
// the executor's state is unchanged, but a plain Application may already
// have executed the batch, so the replica must stop.
//
// The Executor is not safe for concurrent use: the runtime calls it from
// one goroutine.
type Executor struct {
	ldb      *leveldb.DB
	app      Application
	batchApp BatchApplication
	logger   *slog.Logger

	lastExecuted uint64
	replies      map[string]cachedReply
	// cacheAcc is the AdHash of the reply cache entries.
	cacheAcc adHash
}

// NewExecutor loads the last executed sequence and the reply cache from
// db (under storage.PrefixExecutor). app is normally a KV on the same db.
func NewExecutor(db *storage.DB, app Application, logger *slog.Logger) (*Executor, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{
		ldb:     db.LevelDB(),
		app:     app,
		logger:  logger,
		replies: make(map[string]cachedReply),
	}
	if batchApp, ok := app.(BatchApplication); ok {
		e.batchApp = batchApp
	}
	last, err := e.ldb.Get([]byte(executorLastKey), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("executor: load last executed: %w", err)
	case len(last) != 8:
		return nil, fmt.Errorf("executor: load last executed: corrupt value of length %d, want 8", len(last))
	default:
		e.lastExecuted = binary.BigEndian.Uint64(last)
	}
	iter := e.ldb.NewIterator(util.BytesPrefix([]byte(executorReplyPrefix)), nil)
	defer iter.Release()
	for iter.Next() {
		clientID := string(iter.Key()[len(executorReplyPrefix):])
		number, size := binary.Uvarint(iter.Value())
		if size <= 0 {
			return nil, fmt.Errorf("executor: load reply cache: corrupt entry for client %x", clientID)
		}
		reply := cachedReply{number: number, result: bytes.Clone(iter.Value()[size:])}
		e.replies[clientID] = reply
		e.cacheAcc.add(replyHash(clientID, reply))
	}
	if err := iter.Error(); err != nil {
		return nil, fmt.Errorf("executor: load reply cache: %w", err)
	}
	logger.Info("executor: loaded", "last_executed", e.lastExecuted, "cached_clients", len(e.replies))
	return e, nil
}

// LastExecuted returns the sequence of the last applied batch (0 if none).
func (e *Executor) LastExecuted() uint64 { return e.lastExecuted }

// LastRequestNumber returns the number of the client's last executed
// request, or 0 if it has none.
func (e *Executor) LastRequestNumber(clientID []byte) uint64 {
	return e.replies[string(clientID)].number
}

// CachedReply returns the cached result of the client's request if
// requestNumber is exactly the client's last executed request.
func (e *Executor) CachedReply(clientID []byte, requestNumber uint64) ([]byte, bool) {
	reply, ok := e.replies[string(clientID)]
	if !ok || reply.number != requestNumber {
		return nil, false
	}
	return bytes.Clone(reply.result), true
}

// StateDigest returns SHA-256("pbftnode/v1/state" || app.Digest() ||
// reply-cache digest || uvarint(last executed)), the digest checkpoints
// certify. The reply-cache digest is the AdHash over
// SHA-256("pbftnode/v1/reply-entry" || uvarint(len id) || id ||
// uvarint(request number) || result). It costs O(1) when app.Digest does.
func (e *Executor) StateDigest() [32]byte {
	h := sha256.New()
	h.Write([]byte(stateDigestDomain))
	appDigest := e.app.Digest()
	h.Write(appDigest[:])
	cacheDigest := e.cacheAcc.bytes()
	h.Write(cacheDigest[:])
	h.Write(binary.AppendUvarint(nil, e.lastExecuted))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Apply executes the committed batch at sequence, which must be
// LastExecuted()+1 (otherwise it returns an error and changes nothing).
// For each request, in order:
//   - client ID empty or longer than MaxClientIDSize: skipped;
//   - RequestNumber equal to the client's last executed number: not
//     executed again, the cached reply is output;
//   - RequestNumber lower: ignored;
//   - otherwise: executed, cached, output.
//
// An empty batch (null request) only advances the sequence. Application
// writes, reply cache updates and the new last executed sequence are
// written in one unsynced goleveldb batch (see the package documentation
// for why no fsync is needed).
func (e *Executor) Apply(sequence uint64, requests []Request) ([]Reply, error) {
	if sequence != e.lastExecuted+1 {
		return nil, fmt.Errorf("executor: apply sequence %d, want %d (last executed %d)", sequence, e.lastExecuted+1, e.lastExecuted)
	}
	if e.batchApp != nil {
		e.batchApp.Begin()
	}
	pending := make(map[string]cachedReply)
	cacheAcc := e.cacheAcc
	replies := make([]Reply, 0, len(requests))
	for i, req := range requests {
		if len(req.ClientID) == 0 || len(req.ClientID) > MaxClientIDSize {
			e.logger.Warn("executor: skipping request with invalid client ID", "sequence", sequence, "index", i, "client_id_len", len(req.ClientID))
			continue
		}
		id := string(req.ClientID)
		prev, seen := pending[id]
		if !seen {
			prev, seen = e.replies[id]
		}
		if seen && req.RequestNumber <= prev.number {
			if req.RequestNumber == prev.number {
				replies = append(replies, Reply{ClientID: bytes.Clone(req.ClientID), RequestNumber: prev.number, Result: bytes.Clone(prev.result)})
			}
			continue
		}
		result := e.app.Execute(req.Operation)
		reply := cachedReply{number: req.RequestNumber, result: bytes.Clone(result)}
		if seen {
			cacheAcc.sub(replyHash(id, prev))
		}
		cacheAcc.add(replyHash(id, reply))
		pending[id] = reply
		replies = append(replies, Reply{ClientID: bytes.Clone(req.ClientID), RequestNumber: req.RequestNumber, Result: result})
	}

	batch := new(leveldb.Batch)
	if e.batchApp != nil {
		if err := e.batchApp.Stage(batch); err != nil {
			e.batchApp.Rollback()
			return nil, fmt.Errorf("executor: apply sequence %d: %w", sequence, err)
		}
	}
	for id, reply := range pending {
		value := binary.AppendUvarint(nil, reply.number)
		batch.Put([]byte(executorReplyPrefix+id), append(value, reply.result...))
	}
	batch.Put([]byte(executorLastKey), binary.BigEndian.AppendUint64(nil, sequence))
	if err := e.ldb.Write(batch, &opt.WriteOptions{Sync: false}); err != nil {
		if e.batchApp != nil {
			e.batchApp.Rollback()
		}
		return nil, fmt.Errorf("executor: apply sequence %d: write: %w", sequence, err)
	}
	if e.batchApp != nil {
		e.batchApp.Commit()
	}
	for id, reply := range pending {
		e.replies[id] = reply
	}
	e.cacheAcc = cacheAcc
	e.lastExecuted = sequence
	return replies, nil
}

func replyHash(clientID string, reply cachedReply) [32]byte {
	h := sha256.New()
	h.Write([]byte(replyEntryDomain))
	h.Write(binary.AppendUvarint(nil, uint64(len(clientID))))
	h.Write([]byte(clientID))
	h.Write(binary.AppendUvarint(nil, reply.number))
	h.Write(reply.result)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
