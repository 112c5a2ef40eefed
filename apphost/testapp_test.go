package apphost

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/pbftnode/pbftnode/app"
)

var errTestUnavailable = errors.New("test application unreachable")

// testApp is an in-memory key-value application: an operation "k=v" sets
// k to v and returns the previous value; every executed operation is
// appended to Applied (hex client/number; JSON keeps it intact), so a test sees whether an
// operation was applied twice on the state. Its digest hashes the whole
// state. It is safe for concurrent use (Query may run from any goroutine).
type testApp struct {
	mu sync.Mutex
	st testState

	// failCalls makes the next failCalls calls fail with
	// errTestUnavailable; blockExecute makes Execute block until its
	// context ends, after signalling on entered.
	failCalls int
	// failSnapshots makes the next failSnapshots Snapshot calls fail.
	failSnapshots int
	blockExecute  bool
	entered       chan struct{}
	// nondeterministic: Execute stores how many times this instance
	// executed, which differs on replay.
	nondeterministic bool
	executeCalls     int
	// lenient: Execute executes any sequence (an application that does
	// not check that a batch follows its State).
	lenient bool
}

// testState is the application's whole state (its snapshot is the JSON).
type testState struct {
	Sequence uint64            `json:"sequence"`
	Data     map[string]string `json:"data"`
	Applied  []string          `json:"applied"`
}

func newTestApp() *testApp {
	return &testApp{st: testState{Data: map[string]string{}}}
}

// restart empties the application, as a process restarting without
// persistence does.
func (a *testApp) restart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st = testState{Data: map[string]string{}}
}

func (a *testApp) failNext(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failCalls = n
}

// fail consumes one injected failure; the caller holds mu.
func (a *testApp) fail() error {
	if a.failCalls > 0 {
		a.failCalls--
		return errTestUnavailable
	}
	return nil
}

func (a *testApp) state() testState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return testState{Sequence: a.st.Sequence, Data: maps.Clone(a.st.Data), Applied: slices.Clone(a.st.Applied)}
}

func (s testState) digest() [32]byte {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint64(nil, s.Sequence))
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(s.Data[k]), s.Data[k])
	}
	for _, id := range s.Applied {
		fmt.Fprintf(h, "%d:%s", len(id), id)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (a *testApp) Info(context.Context) (app.State, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.fail(); err != nil {
		return app.State{}, err
	}
	return app.State{Sequence: a.st.Sequence, Digest: a.st.digest()}, nil
}

func (a *testApp) Execute(ctx context.Context, sequence uint64, ops []app.Operation) ([][]byte, [32]byte, error) {
	a.mu.Lock()
	if a.blockExecute {
		entered := a.entered
		a.mu.Unlock()
		if entered != nil {
			entered <- struct{}{}
		}
		<-ctx.Done()
		return nil, [32]byte{}, ctx.Err()
	}
	defer a.mu.Unlock()
	if err := a.fail(); err != nil {
		return nil, [32]byte{}, err
	}
	if sequence != a.st.Sequence+1 && !a.lenient {
		// What package app asks of an application that lost its state:
		// refuse a batch that does not follow its State.
		return nil, [32]byte{}, fmt.Errorf("test app: batch %d does not follow sequence %d", sequence, a.st.Sequence)
	}
	a.executeCalls++
	results := make([][]byte, len(ops))
	for i, op := range ops {
		k, v, ok := strings.Cut(string(op.Payload), "=")
		if !ok {
			results[i] = []byte("error: malformed")
			continue
		}
		if a.nondeterministic {
			v = fmt.Sprintf("%s#%d", v, a.executeCalls)
		}
		results[i] = []byte("old:" + a.st.Data[k])
		a.st.Data[k] = v
		a.st.Applied = append(a.st.Applied, fmt.Sprintf("%x/%d", op.Client, op.RequestNumber))
	}
	a.st.Sequence = sequence
	return results, a.st.digest(), nil
}

func (a *testApp) Query(_ context.Context, q []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return []byte(a.st.Data[string(q)]), nil
}

func (a *testApp) Snapshot(_ context.Context, w io.Writer) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.fail(); err != nil {
		return err
	}
	if a.failSnapshots > 0 {
		a.failSnapshots--
		return errTestUnavailable
	}
	return json.NewEncoder(w).Encode(a.st)
}

func (a *testApp) Restore(_ context.Context, state app.State, r io.Reader) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.fail(); err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	st := testState{Data: map[string]string{}}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("test app: decode snapshot: %w", err)
		}
		if st.Data == nil {
			st.Data = map[string]string{}
		}
	}
	if st.Sequence != state.Sequence {
		return fmt.Errorf("test app: snapshot at sequence %d, want %d", st.Sequence, state.Sequence)
	}
	a.st = st
	return nil
}
