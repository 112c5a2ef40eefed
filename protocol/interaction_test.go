package protocol_test

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/byzantine"
	"github.com/pbftnode/pbftnode/crypto"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/wire"
)

// TestInteraction runs the golden interaction scripts in testdata/*.txt:
// each drives a cluster of real replica.Drivers step by step and compares
// what every replica persisted, sent, executed and replied with the
// recorded output. Regenerate with
//
//	go test ./protocol/ -run TestInteraction -rewrite
//
// and read the diff: it is the protocol's behaviour that changed.
func TestInteraction(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no interaction scripts in testdata/")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			var env *interactionEnv
			datadriven.RunTest(t, file, func(t *testing.T, d *datadriven.TestData) string {
				if d.Cmd == "init" {
					env = initEnv(t, d)
					return env.take()
				}
				if env == nil {
					t.Fatalf("%s: %s before init", d.Pos, d.Cmd)
				}
				env.t = t
				env.quiet = d.HasArg("quiet")
				if err := env.handle(d); err != nil {
					t.Fatalf("%s: %s: %v", d.Pos, d.Cmd, err)
				}
				return env.take()
			})
		})
	}
}

// initEnv handles "init n=4 [checkpoint=4] [window=8] [timeout=10]
// [retransmit=15] [inflight=8] [epochs]" (epochs: see
// interaction_epoch_test.go).
func initEnv(t *testing.T, d *datadriven.TestData) *interactionEnv {
	n, k, timeout := 4, 4, 10
	window, retransmit, inflight := -1, -1, 8
	intArg(t, d, "n", &n)
	intArg(t, d, "checkpoint", &k)
	intArg(t, d, "window", &window)
	intArg(t, d, "timeout", &timeout)
	intArg(t, d, "retransmit", &retransmit)
	intArg(t, d, "inflight", &inflight)
	if window < 0 {
		window = 2 * k
	}
	if retransmit < 0 {
		retransmit = timeout * 3 / 2
	}
	return newInteractionEnv(t, n, protocol.Config{
		CheckpointInterval: uint64(k), WindowSize: uint64(window), ViewChangeTimeoutTicks: timeout,
		RetransmitTicks: retransmit, MaxInFlight: inflight, MaxPartialInFlight: min(2, inflight),
	}, d.HasArg("epochs"))
}

func intArg(t *testing.T, d *datadriven.TestData, key string, dest *int) {
	if d.HasArg(key) {
		d.ScanArgs(t, key, dest)
	}
}

func (env *interactionEnv) handle(d *datadriven.TestData) error {
	switch d.Cmd {
	case "submit":
		return env.submit(d)
	case "deliver":
		return env.deliver(d)
	case "stabilize", "process":
		return env.stabilize()
	case "tick":
		return env.tick(d)
	case "crash":
		r := env.replicas[env.replicaArg(d, "replica")]
		r.crash()
		env.printf("%d crashed", r.id)
		return nil
	case "restart":
		return env.restart(env.replicaArg(d, "replica"))
	case "partition":
		return env.partition(d)
	case "heal":
		clear(env.group)
		env.printf("healed")
		return nil
	case "equivocate":
		return env.equivocate(d)
	case "status":
		env.status()
		return nil
	case "log":
		return env.printLog(env.replicaArg(d, "replica"))
	}
	return fmt.Errorf("unknown command")
}

// replicaArg returns the replica the key names (also accepted as
// "primary").
func (env *interactionEnv) replicaArg(d *datadriven.TestData, key string) int {
	var id int
	switch {
	case d.HasArg(key):
		d.ScanArgs(env.t, key, &id)
	case d.HasArg("primary"):
		d.ScanArgs(env.t, "primary", &id)
	default:
		env.t.Fatalf("%s: %s needs %s=", d.Pos, d.Cmd, key)
	}
	if id < 0 || id >= env.n {
		env.t.Fatalf("%s: no replica %d", d.Pos, id)
	}
	return id
}

// targets parses "to=0", "to=(1,2,3)" or "to=all" (the default is 0).
func (env *interactionEnv) targets(d *datadriven.TestData) []int {
	arg, ok := d.Arg("to")
	if !ok {
		return []int{0}
	}
	if len(arg.Vals) == 1 && arg.Vals[0] == "all" {
		all := make([]int, env.n)
		for i := range all {
			all[i] = i
		}
		return all
	}
	var out []int
	for _, v := range arg.Vals {
		i, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || i < 0 || i >= env.n {
			env.t.Fatalf("%s: bad replica %q", d.Pos, v)
		}
		out = append(out, i)
	}
	return out
}

// submit handles "submit client=0 op=put/k/v [to=..] [num=N] [tentative]": client
// signs request N (default: its next number) and sends it to the
// replicas named; num= repeats an earlier request (a client retransmits);
// tentative sets wire.Request.tentative (the replicas may answer once
// they prepared the batch, before it commits).
func (env *interactionEnv) submit(d *datadriven.TestData) error {
	client := 0
	intArg(env.t, d, "client", &client)
	var op string
	d.ScanArgs(env.t, "op", &op)
	number := env.nextRequest[client] + 1
	if d.HasArg("num") {
		d.ScanArgs(env.t, "num", &number)
	}
	env.nextRequest[client] = max(env.nextRequest[client], number)
	change, isChange, err := env.configChange(op)
	if err != nil {
		return err
	}
	var encoded []byte
	if !isChange {
		if encoded, err = encodeOperation(op); err != nil {
			return err
		}
	}
	key := env.clients[client]
	req := &wire.Request{ClientId: key.Public().(ed25519.PublicKey), RequestNumber: number, Operation: encoded, ConfigChange: change,
		Tentative: d.HasArg("tentative")}
	name := env.requestName(req.ClientId, number)
	env.ops[name] = strings.ReplaceAll(op, "/", " ")
	payload, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	signed := &wire.Signed{Payload: payload, Signature: crypto.NewSigner(key, interactionClusterID).Sign(crypto.DomainClientRequest, payload)}
	verified, err := env.verifier.ClientRequest(signed)
	if err != nil {
		return err
	}
	for _, i := range env.targets(d) {
		r := env.replicas[i]
		if r.down() {
			env.printf("%s -> %d: replica down", name, i)
			continue
		}
		env.detailf("%s -> %d", name, i)
		env.indent = "  "
		if err := r.driver.Submit(verified); err != nil {
			env.detailf("%d drops %s: %v", i, name, err)
		}
		err := r.process()
		env.indent = ""
		if err != nil {
			return err
		}
	}
	return nil
}

// encodeOperation encodes "put/k/v", "get/k" or "delete/k".
func encodeOperation(op string) ([]byte, error) {
	parts := strings.Split(op, "/")
	switch {
	case parts[0] == "put" && len(parts) == 3:
		return execution.EncodePut([]byte(parts[1]), []byte(parts[2])), nil
	case parts[0] == "get" && len(parts) == 2:
		return execution.EncodeGet([]byte(parts[1])), nil
	case parts[0] == "delete" && len(parts) == 2:
		return execution.EncodeDelete([]byte(parts[1])), nil
	}
	return nil, fmt.Errorf("bad op %q (put/k/v, get/k, delete/k)", op)
}

// deliver handles "deliver [from=..] [to=..] [kind=..] [drop]": it takes
// the queued frames that match and delivers (or drops) each in order;
// what they cause is queued behind.
func (env *interactionEnv) deliver(d *datadriven.TestData) error {
	match := func(f envFrame) bool {
		var from, to int
		var kind string
		if d.HasArg("from") {
			d.ScanArgs(env.t, "from", &from)
			if f.from != uint32(from) {
				return false
			}
		}
		if d.HasArg("to") {
			d.ScanArgs(env.t, "to", &to)
			if f.to != uint32(to) {
				return false
			}
		}
		if d.HasArg("kind") {
			d.ScanArgs(env.t, "kind", &kind)
			if strings.Fields(f.desc)[0] != kind {
				return false
			}
		}
		return true
	}
	var picked, rest []envFrame
	for _, f := range env.queue {
		if match(f) {
			picked = append(picked, f)
		} else {
			rest = append(rest, f)
		}
	}
	env.queue = rest
	for _, f := range picked {
		if d.HasArg("drop") {
			env.detailf("%d->%d %s dropped", f.from, f.to, f.trimmed())
			continue
		}
		if err := env.deliverFrame(f); err != nil {
			return err
		}
	}
	return nil
}

// stabilize delivers every queued frame, and what those cause, until the
// network is quiet.
func (env *interactionEnv) stabilize() error {
	for steps := 0; len(env.queue) > 0; steps++ {
		if steps > 10000 {
			return fmt.Errorf("the cluster does not settle")
		}
		f := env.queue[0]
		env.queue = env.queue[1:]
		if err := env.deliverFrame(f); err != nil {
			return err
		}
	}
	return nil
}

func (f envFrame) trimmed() string {
	return strings.TrimSuffix(f.desc, fmt.Sprintf(" from=%d", f.from))
}

// deliverFrame verifies a frame as the runtime does and hands it to its
// recipient's driver (a state request to the recipient's server).
func (env *interactionEnv) deliverFrame(f envFrame) error {
	r := env.replicas[f.to]
	switch {
	case r.down():
		env.detailf("%d->%d %s lost: %d is down", f.from, f.to, f.trimmed(), f.to)
		return nil
	case env.group[f.from] != env.group[f.to]:
		env.detailf("%d->%d %s lost: partition", f.from, f.to, f.trimmed())
		return nil
	}
	env.detailf("%d->%d %s", f.from, f.to, f.trimmed())
	env.indent = "  "
	defer func() { env.indent = "" }()
	if f.kind == kindConfig {
		return env.deliverConfig(r, f)
	}
	m, err := env.verifierOf(r).ReplicaFrame(f.data)
	if err != nil {
		env.detailf("%d rejects: %v", f.to, err)
		return nil
	}
	if req := m.Body.GetStateRequest(); req != nil {
		r.serveState(m.Body.From, req)
		return nil
	}
	if err := r.driver.Step(m); err != nil {
		env.detailf("%d drops: %v", f.to, err)
	}
	return r.process()
}

// tick handles "tick [replica=..] [count=1]": every live replica (or the
// one named) ticks count times; what they send is queued.
func (env *interactionEnv) tick(d *datadriven.TestData) error {
	count := 1
	intArg(env.t, d, "count", &count)
	ids := make([]int, 0, env.n)
	if d.HasArg("replica") {
		ids = append(ids, env.replicaArg(d, "replica"))
	} else {
		for i := range env.n {
			ids = append(ids, i)
		}
	}
	for range count {
		for _, i := range ids {
			r := env.replicas[i]
			if r.down() {
				continue
			}
			r.driver.Tick()
			if err := r.process(); err != nil {
				return err
			}
		}
	}
	return nil
}

// restart starts a crashed replica over its storage and database.
func (env *interactionEnv) restart(id int) error {
	r := env.replicas[id]
	if !r.down() {
		return fmt.Errorf("replica %d is not down", id)
	}
	env.printf("%d restarts", id)
	env.indent = "  "
	err := r.start()
	env.indent = ""
	if err != nil {
		return err
	}
	st := r.driver.Status()
	env.printf("%d recovered: view=%d %s executed=%d stable=%d", id, st.View, activeWord(st.ViewActive), r.exec.LastExecuted(), st.LowWatermark)
	return nil
}

// partition handles "partition 0,1 | 2,3": frames between the groups are
// lost until heal.
func (env *interactionEnv) partition(d *datadriven.TestData) error {
	group := 0
	seen := make([]bool, env.n)
	for _, arg := range d.CmdArgs {
		if arg.Key == "|" {
			group++
			continue
		}
		for _, s := range strings.Split(arg.Key, ",") {
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= env.n || seen[i] {
				return fmt.Errorf("bad replica %q", s)
			}
			seen[i] = true
			env.group[i] = group
		}
	}
	if slices.Contains(seen, false) {
		return fmt.Errorf("every replica must be in a group")
	}
	keys := make([]string, len(d.CmdArgs))
	for i, arg := range d.CmdArgs {
		keys[i] = arg.Key
	}
	env.printf("partitioned: %s", strings.Join(keys, " "))
	return nil
}

// equivocate handles "equivocate primary=0": from now on the replica
// sends each backup a different PRE-PREPARE for the same sequence (the
// byzantine package's strategy, through the driver's Filter).
func (env *interactionEnv) equivocate(d *datadriven.TestData) error {
	id := env.replicaArg(d, "replica")
	f, err := byzantine.New(byzantine.StrategyEquivocate, uint32(id), env.n, env.keys[id], interactionClusterID)
	if err != nil {
		return err
	}
	env.replicas[id].byz = f
	env.printf("%d equivocates", id)
	return nil
}

// status prints each replica's position: view, executed sequence, stable
// checkpoint, state digest and stored log entries.
func (env *interactionEnv) status() {
	for _, r := range env.replicas {
		if r.down() {
			env.printf("%d: down", r.id)
			continue
		}
		st := r.driver.Status()
		env.printf("%d: view=%d %s primary=%d executed=%d stable=%d state=%s log=%d", r.id, st.View,
			activeWord(st.ViewActive), st.Primary, r.exec.LastExecuted(), st.LowWatermark, short(digestOf(r.exec)), r.store.LogEntries())
	}
}

// printLog prints what a replica's storage holds.
func (env *interactionEnv) printLog(id int) error {
	r := env.replicas[id]
	view, active, found, err := r.store.LoadViewState()
	if err != nil {
		return err
	}
	if found {
		env.printf("view=%d %s", view, activeWord(active))
	}
	cert, found, err := r.store.LoadStableCheckpoint()
	if err != nil {
		return err
	}
	if found {
		env.printf("stable checkpoint %s", describeCertificate(cert))
	}
	entries, err := r.store.LoadLog(0)
	if err != nil {
		return err
	}
	for _, e := range entries {
		env.printf("n=%d v=%d %s", e.Sequence, e.View, env.describeLogEntry(e))
	}
	if len(entries) == 0 {
		env.printf("log empty")
	}
	return nil
}
