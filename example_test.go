package pbftnode_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pbftnode/pbftnode"
	"github.com/pbftnode/pbftnode/app"
)

// adder is a tiny application: one number that each operation (a decimal
// number) adds to; the result is the new total. Its whole state is one
// number, so hashing it is its digest.
type adder struct {
	mu    sync.Mutex
	state app.State
	total int64
}

func (a *adder) Info(context.Context) (app.State, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state, nil
}

func (a *adder) Execute(_ context.Context, seq uint64, ops []app.Operation) ([][]byte, [32]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq != a.state.Sequence+1 { // lost state: the replica restores it
		return nil, [32]byte{}, errors.New("adder: out of sequence")
	}
	results := make([][]byte, len(ops))
	for i, op := range ops {
		n, err := strconv.ParseInt(string(op.Payload), 10, 32) // hostile bytes: refuse, never panic
		if err != nil {
			results[i] = []byte("error: not a number")
			continue
		}
		a.total += n
		results[i] = strconv.AppendInt(nil, a.total, 10)
	}
	a.state = app.State{Sequence: seq, Digest: adderDigest(a.total)}
	return results, a.state.Digest, nil
}

func adderDigest(total int64) [32]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(total)))
}

func (a *adder) Query(context.Context, []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strconv.AppendInt(nil, a.total, 10), nil
}

func (a *adder) Snapshot(_ context.Context, w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := w.Write(binary.BigEndian.AppendUint64(nil, uint64(a.total)))
	return err
}

func (a *adder) Restore(_ context.Context, st app.State, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 9))
	if err != nil {
		return err
	}
	var total int64
	switch len(b) {
	case 0: // the initial state
	case 8:
		total = int64(binary.BigEndian.Uint64(b))
	default:
		return errors.New("adder: malformed snapshot")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total, a.state = total, app.State{Sequence: st.Sequence, Digest: adderDigest(total)}
	return nil
}

// Four PBFT replicas of a tiny application in one process, and a client.
func Example() {
	dir, err := os.MkdirTemp("", "pbftnode-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	base, err := pbftnode.FreeBasePort("127.0.0.1", 4)
	if err != nil {
		log.Fatal(err)
	}
	// Four replica homes (keys, config.json with fsync on) and client.json.
	if err := pbftnode.WriteTestnet(pbftnode.Testnet{Dir: dir, Consensus: pbftnode.PBFT, BasePort: base}); err != nil {
		log.Fatal(err)
	}
	for i := range 4 {
		r, err := pbftnode.StartReplica(pbftnode.TestnetHome(dir, i), &adder{})
		if err != nil {
			log.Fatal(err)
		}
		defer r.Close()
	}
	c, err := pbftnode.Dial(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, op := range []string{"2", "40", "x"} {
		// Invoke returns once f+1 replicas sent the same result.
		res, err := c.Invoke(ctx, []byte(op))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("add %s: %s\n", op, res)
	}
	// Output:
	// add 2: 2
	// add 40: 42
	// add x: error: not a number
}
