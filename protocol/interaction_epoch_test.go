package protocol_test

import (
	"crypto/ed25519"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/wire"
)

// Configuration epochs in the golden scripts ("init ... epochs"): every
// driver runs with replica.Epochs and its executor WithMembership, under
// a genesis of the n replicas and one administrator; "submit
// op=admins/<epoch>" sends a set-admins change for that epoch (the
// members stay, so positions are member indices). Configuration votes and
// certificates travel on the recording network as CONFIG-VOTE and
// CONFIG-CERT frames; a switch prints "<i> epoch <e> base <b>".

// kindConfig marks the recording network's configuration frames.
const kindConfig protocol.Kind = 'X'

// configFrame is what a configuration frame carries.
type configFrame struct {
	vote  *wire.Signed
	cert  *wire.ConfigCertificate
	after uint64 // a request for the certificates after epoch after-1
}

func (env *interactionEnv) enableEpochs() {
	env.admin = seededKey("admin", 0)
	env.genesis = membership.Config{Admins: []ed25519.PublicKey{env.admin.Public().(ed25519.PublicKey)}, AdminThreshold: 1}
	for i, k := range env.keys {
		env.genesis.Members = append(env.genesis.Members, membership.Member{Index: uint32(i), PublicKey: k.Public().(ed25519.PublicKey),
			Address: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 7000+i)})
	}
	env.verifiers = map[uint64]*protocol.MessageVerifier{}
	env.configFrames = map[int]configFrame{}
}

// verifierFor returns the verifier of an epoch's configuration.
func (env *interactionEnv) verifierFor(cfg membership.Config) *protocol.MessageVerifier {
	if v := env.verifiers[cfg.Epoch]; v != nil {
		return v
	}
	pubs := make([]ed25519.PublicKey, len(cfg.Members))
	for i, m := range cfg.Members {
		pubs[i] = m.PublicKey
	}
	v := protocol.NewMessageVerifier(interactionClusterID, pubs, nil, nil, 0).WithEpoch(cfg.Epoch)
	v.SetWindowSize(env.core.WindowSize)
	env.verifiers[cfg.Epoch] = v
	return v
}

// verifierOf returns the verifier replica r checks frames with.
func (env *interactionEnv) verifierOf(r *envReplica) *protocol.MessageVerifier {
	if env.verifiers == nil || r.driver == nil {
		return env.verifier
	}
	st, _ := r.driver.EpochStatus()
	return env.verifierFor(st.Config)
}

// epochOptions returns replica r's executor option and driver epochs.
func (r *envReplica) epochOptions() ([]execution.ExecutorOption, *replica.Epochs) {
	env := r.env
	if env.verifiers == nil {
		return nil, nil
	}
	rules := execution.MembershipRules{ClusterID: interactionClusterID, Genesis: env.genesis, Rules: membership.Rules{MinMembers: 4},
		ActiveFrom: replica.ActiveFrom(env.core.CheckpointInterval)}
	return []execution.ExecutorOption{execution.WithMembership(rules)}, &replica.Epochs{
		ClusterID: interactionClusterID, Genesis: env.genesis, Rules: rules.Rules, Self: r.id,
		PublicKey: env.keys[r.id].Public().(ed25519.PublicKey), NewVerifier: env.verifierFor, Storage: r.store, Network: envEpochNetwork{r},
		OnEpoch: func(st replica.EpochStatus) {
			if st.Config.Epoch > 0 {
				env.printf("%d epoch %d base %d member=%t", r.id, st.Config.Epoch, st.Base, st.Member)
			}
		},
	}
}

type envEpochNetwork struct{ r *envReplica }

func (n envEpochNetwork) queue(to uint32, desc string, f configFrame) {
	env := n.r.env
	env.detailf("%d send %s to=%d", n.r.id, desc, to)
	id := len(env.configFrames)
	env.configFrames[id] = f
	env.queue = append(env.queue, envFrame{from: n.r.id, to: to, kind: kindConfig, data: []byte(strconv.Itoa(id)), desc: desc + fmt.Sprintf(" from=%d", n.r.id)})
}

func (n envEpochNetwork) SendConfigVote(to uint32, vote *wire.Signed) {
	var v wire.ConfigVote
	_ = protoUnmarshal(vote.GetPayload(), &v)
	n.queue(to, fmt.Sprintf("CONFIG-VOTE e=%d n=%d state=%s", v.Epoch, v.Sequence, short(v.StateDigest)), configFrame{vote: vote})
}

func (n envEpochNetwork) SendConfigCertificate(to uint32, cert *wire.ConfigCertificate) {
	n.queue(to, fmt.Sprintf("CONFIG-CERT n=%d votes=%d", cert.Sequence, len(cert.Votes)), configFrame{cert: cert})
}

func (n envEpochNetwork) RequestConfig(to uint32, epoch uint64) {
	n.queue(to, fmt.Sprintf("CONFIG-REQUEST after=%d", epoch), configFrame{after: epoch + 1})
}

// deliverConfig hands a configuration frame to its recipient's driver.
func (env *interactionEnv) deliverConfig(r *envReplica, f envFrame) error {
	id, _ := strconv.Atoi(string(f.data))
	c := env.configFrames[id]
	var err error
	switch {
	case c.vote != nil:
		err = r.driver.StepConfigVote(c.vote)
	case c.cert != nil:
		err = r.driver.StepConfigCertificate(c.cert)
	default:
		r.driver.OldEpochMessage(f.from, c.after-1)
	}
	if err != nil {
		env.detailf("%d drops: %v", f.to, err)
	}
	return r.process()
}

// configChange encodes "admins/<epoch>": a set-admins change keeping the
// administrator, signed by it.
func (env *interactionEnv) configChange(op string) ([]byte, bool, error) {
	epoch, ok := strings.CutPrefix(op, "admins/")
	if !ok {
		return nil, false, nil
	}
	e, err := strconv.ParseUint(epoch, 10, 64)
	if err != nil {
		return nil, true, fmt.Errorf("admins/<epoch>: %w", err)
	}
	ch := membership.Change{Epoch: e, Kind: membership.SetAdmins, Admins: env.genesis.Admins, AdminThreshold: 1}
	sc := membership.SignedChange{Change: ch.Encode()}
	sc.Signatures = append(sc.Signatures, membership.Sign(interactionClusterID, sc.Change, env.admin))
	return sc.Encode(), true, nil
}

func protoUnmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }
