package pbft

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/config"
	"github.com/pbftnode/pbftnode/execution"
	"github.com/pbftnode/pbftnode/membership"
	"github.com/pbftnode/pbftnode/node"
	"github.com/pbftnode/pbftnode/p2p"
	"github.com/pbftnode/pbftnode/protocol"
	"github.com/pbftnode/pbftnode/replica"
	"github.com/pbftnode/pbftnode/wire"
)

// Configuration epochs in the runtime (docs/reconfiguration.md, "The PBFT
// runtime"). The driver (replica.Epochs) decides every switch; the runtime
//   - verifies replica frames with the verifier of the driver's epoch
//     (keys by position in that configuration), swapped atomically in
//     OnEpoch, and maps the core's positions to member indices (MemberAt)
//     when it sends;
//   - carries configuration votes, certificates and requests for them as
//     CONFIG frames on the replica stream: a zero byte (never the first
//     byte of an encoded wire.ReplicaFrame), a kind byte, then the
//     encoded wire.Signed vote, wire.ConfigCertificate, or the epoch the
//     sender knows (uvarint);
//   - hands a frame of an older epoch to Driver.OldEpochMessage (its
//     sender lacks certificates) and counts every frame of another epoch;
//   - keeps the transport's member set to the union of the configuration
//     in force, the next one once a change executed (its new members must
//     hear the votes and the certificate) and the previous one (laggards
//     are answered), each index with its newest record, and itself under
//     its own key.

// CONFIG frame kinds (the byte after the zero marker).
const (
	configVoteFrame    byte = 1
	configCertFrame    byte = 2
	configRequestFrame byte = 3
)

// maxConfigRequestFrame bounds a CONFIG request (marker, kind, uvarint).
const maxConfigRequestFrame = 2 + binary.MaxVarintLen64

// isConfigFrame reports whether a replica-stream frame is a CONFIG frame.
func isConfigFrame(b []byte) bool { return len(b) >= 2 && b[0] == 0 }

func encodeConfigFrame(kind byte, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("pbft: encoding a configuration message: %v", err)) // plain messages always encode
	}
	return append([]byte{0, kind}, b...)
}

// configInput is a decoded CONFIG frame, or (oldEpoch) a note that member
// from sent a replica frame of an older epoch.
type configInput struct {
	from     uint32
	vote     *wire.Signed
	cert     *wire.ConfigCertificate
	request  bool
	oldEpoch bool
	epoch    uint64
}

// decodeConfigFrame decodes a CONFIG frame from member from; the driver
// verifies votes and certificates.
func decodeConfigFrame(from uint32, b []byte) (configInput, error) {
	in := configInput{from: from}
	switch b[1] {
	case configVoteFrame:
		in.vote = &wire.Signed{}
		if err := proto.Unmarshal(b[2:], in.vote); err != nil {
			return in, fmt.Errorf("%w: configuration vote: %w", protocol.ErrMalformed, err)
		}
	case configCertFrame:
		in.cert = &wire.ConfigCertificate{}
		if err := proto.Unmarshal(b[2:], in.cert); err != nil {
			return in, fmt.Errorf("%w: configuration certificate: %w", protocol.ErrMalformed, err)
		}
	case configRequestFrame:
		epoch, n := binary.Uvarint(b[2:])
		if n <= 0 || len(b) > maxConfigRequestFrame {
			return in, fmt.Errorf("%w: configuration request", protocol.ErrMalformed)
		}
		in.request, in.epoch = true, epoch
	default:
		return in, fmt.Errorf("%w: configuration frame kind %d", protocol.ErrMalformed, b[1])
	}
	return in, nil
}

// stepConfig hands a CONFIG input to the driver (on the event loop).
func (n *Node) stepConfig(in configInput) {
	var err error
	switch {
	case in.vote != nil:
		err = n.driver.StepConfigVote(in.vote)
	case in.cert != nil:
		err = n.driver.StepConfigCertificate(in.cert)
	default: // a request, or an old-epoch frame: both ask for what in.from lacks
		n.driver.OldEpochMessage(in.from, in.epoch)
	}
	if err != nil {
		n.drop("config_refused", "from", in.from, "err", err)
	}
}

// epochNetwork sends the driver's configuration messages by member index.
type epochNetwork struct{ n *Node }

// SendConfigVote implements replica.EpochNetwork.
func (e epochNetwork) SendConfigVote(to uint32, vote *wire.Signed) {
	e.n.Host.Send(to, encodeConfigFrame(configVoteFrame, vote))
}

// SendConfigCertificate implements replica.EpochNetwork.
func (e epochNetwork) SendConfigCertificate(to uint32, cert *wire.ConfigCertificate) {
	e.n.Host.Send(to, encodeConfigFrame(configCertFrame, cert))
}

// RequestConfig implements replica.EpochNetwork.
func (e epochNetwork) RequestConfig(to uint32, epoch uint64) {
	e.n.Host.Send(to, binary.AppendUvarint([]byte{0, configRequestFrame}, epoch))
}

// pbftMembershipRules are the executor's rules on configuration changes:
// a change executed at s is in force after the checkpoint that follows.
// ok is false when the genesis is not a valid configuration (a test
// cluster without addresses): the runtime then runs without epochs and
// configuration changes are refused.
func pbftMembershipRules(cfg node.Config, checkpointInterval uint64) (execution.MembershipRules, bool) {
	if err := cfg.Genesis.Check(); err != nil {
		return execution.MembershipRules{}, false
	}
	if checkpointInterval == 0 {
		checkpointInterval = protocol.DefaultCheckpointInterval
	}
	return execution.MembershipRules{
		ClusterID:  cfg.ClusterID,
		Genesis:    cfg.Genesis,
		Rules:      config.MembershipRules(config.ConsensusPBFT),
		ActiveFrom: replica.ActiveFrom(checkpointInterval),
	}, true
}

// epochsConfig returns the driver's epoch configuration.
func (n *Node) epochsConfig(rules execution.MembershipRules) *replica.Epochs {
	return &replica.Epochs{
		ClusterID:   n.cfg.ClusterID,
		Genesis:     n.cfg.Genesis,
		Rules:       rules.Rules,
		Self:        n.cfg.Index,
		PublicKey:   n.cfg.Self.PublicKey,
		NewVerifier: n.verifierFor,
		Storage:     n.DB,
		Network:     epochNetwork{n: n},
		OnEpoch:     n.onEpoch,
	}
}

// verifierFor returns the verifier of cfg's epoch: keys by position,
// sharing the runtime's verification pool and request cache.
func (n *Node) verifierFor(cfg membership.Config) *protocol.MessageVerifier {
	pubs := make([]ed25519.PublicKey, len(cfg.Members))
	for i, m := range cfg.Members {
		pubs[i] = m.PublicKey
	}
	v := protocol.NewMessageVerifier(n.cfg.ClusterID, pubs, n.requestCache, n.pool, n.maxBatch).WithEpoch(cfg.Epoch).
		CheckDirectCommits(n.cfg.CheckDirectCommits)
	if n.window > 0 {
		v.SetWindowSize(n.window)
	}
	return v
}

// onEpoch follows the driver's epoch (after Recover and every switch, on
// the event loop or before it starts): the verifier, the metrics, and a
// log line when this replica is not a member.
func (n *Node) onEpoch(st replica.EpochStatus) {
	n.verifier.Store(n.verifierFor(st.Config))
	n.epochNow.Store(&st)
	n.epochMetrics.epoch.Set(float64(st.Config.Epoch))
	if !st.Member {
		if _, listed := st.Config.Member(n.cfg.Index); listed || n.everMember {
			n.log.Warn("this replica is not a member of the configuration in force (removed, or its key rotated away): it idles",
				"epoch", st.Config.Epoch, "members", st.Config.Indices())
		} else {
			n.log.Info("this replica is not a member yet: it waits for a configuration that adds it",
				"epoch", st.Config.Epoch, "members", st.Config.Indices())
		}
	} else {
		n.everMember = true
		n.log.Info("configuration epoch in force", "epoch", st.Config.Epoch, "base", st.Base, "position", st.Position,
			"members", st.Config.Indices())
	}
	n.syncHostMembers()
}

// hostConfigs returns the configurations whose members the transport
// admits, newest first: the next one (a change executed, the switch
// pending), the one in force, the previous one.
func (n *Node) hostConfigs() []membership.Config {
	st, ok := n.driver.EpochStatus()
	if !ok {
		return nil
	}
	var out []membership.Config
	if next := n.executor.Membership().Current; next.Epoch == st.Config.Epoch+1 && len(next.Members) > 0 {
		out = append(out, next)
	}
	out = append(out, st.Config)
	if h := n.driver.ConfigHistory().Certificates; len(h) >= 2 {
		out = append(out, h[len(h)-2].Config)
	} else if len(h) == 1 {
		out = append(out, n.cfg.Genesis)
	}
	return out
}

// syncHostMembers hands the transport the members of hostConfigs when
// they changed since the last call (on the event loop).
func (n *Node) syncHostMembers() {
	if n.Host == nil || n.driver == nil {
		return
	}
	configs := n.hostConfigs()
	if len(configs) == 0 {
		return
	}
	if slices.EqualFunc(configs, n.hostEpochs, func(c membership.Config, epoch uint64) bool { return c.Epoch == epoch }) {
		return
	}
	members, err := n.hostMembers(configs)
	if err == nil {
		err = n.Host.SetMembers(members)
	}
	if err != nil {
		n.log.Error("transport: member set", "err", err)
		return
	}
	n.hostEpochs = n.hostEpochs[:0]
	for _, c := range configs {
		n.hostEpochs = append(n.hostEpochs, c.Epoch)
	}
}

// hostMembers is the union of configs' members (newest record first for
// each index), with this replica under its own key and address.
func (n *Node) hostMembers(configs []membership.Config) ([]p2p.Member, error) {
	seen := map[uint32]bool{n.cfg.Index: true}
	self, err := node.Member(node.Replica{Index: n.cfg.Index, PublicKey: n.cfg.Self.PublicKey, Addr: n.cfg.Self.Address})
	if err != nil {
		return nil, err
	}
	out := []p2p.Member{self}
	for _, c := range configs {
		for _, m := range c.Members {
			if seen[m.Index] || bytes.Equal(m.PublicKey, n.cfg.Self.PublicKey) {
				continue
			}
			seen[m.Index] = true
			pm, err := node.Member(node.Replica{Index: m.Index, PublicKey: m.PublicKey, Addr: m.Address})
			if err != nil {
				return nil, err
			}
			out = append(out, pm)
		}
	}
	return out, nil
}

// hostReplicas is the replica list the transport starts with (before the
// driver recovered its epoch): the cluster file's, with this replica
// under its own key (a rotated key) or added (a spare).
func hostReplicas(cfg node.Config) []node.Replica {
	out := make([]node.Replica, 0, len(cfg.Replicas)+1)
	for _, r := range cfg.Replicas {
		if r.Index == cfg.Index {
			r.PublicKey = cfg.Self.PublicKey
		} else if bytes.Equal(r.PublicKey, cfg.Self.PublicKey) {
			continue
		}
		out = append(out, r)
	}
	if cfg.Spare {
		out = append(out, node.Replica{Index: cfg.Index, PublicKey: cfg.Self.PublicKey, Addr: cfg.Self.Address})
	}
	return out
}

// noteWrongEpoch counts a replica frame of another epoch and, when it is
// of an older epoch than the one in force, tells the driver (off the
// event loop: the epoch is read from the last published status).
func (n *Node) noteWrongEpoch(f p2p.Frame) (configInput, bool) {
	n.epochMetrics.wrongEpoch.Inc()
	var rf wire.ReplicaFrame
	var body wire.ReplicaMessage
	if f.FromIndex < 0 || proto.Unmarshal(f.Data, &rf) != nil || proto.Unmarshal(rf.GetMessage().GetPayload(), &body) != nil {
		return configInput{}, false
	}
	st := n.status.Load()
	if st == nil || body.Epoch >= st.Epoch {
		return configInput{}, false
	}
	return configInput{from: uint32(f.FromIndex), oldEpoch: true, epoch: body.Epoch}, true
}

// epochMetrics are the runtime's configuration-epoch metrics.
type epochMetrics struct {
	epoch                 prometheus.Gauge
	wrongEpoch, discarded prometheus.Counter
	// discardedSeen is the driver's count already added to discarded.
	discardedSeen uint64
}

func newEpochMetrics(m *node.Metrics) *epochMetrics {
	e := &epochMetrics{
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pbftnode_epoch",
			Help: "The configuration epoch in force at this replica (0: the cluster file's)."}),
		wrongEpoch: prometheus.NewCounter(prometheus.CounterOpts{Name: "pbftnode_wrong_epoch_frames_total",
			Help: "Replica frames of another configuration epoch than the one in force, refused (an older one is answered with the certificates its sender lacks)."}),
		discarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "pbftnode_discarded_beyond_end_total",
			Help: "Committed batches of an ending epoch above its end that were not executed."}),
	}
	m.Registry.MustRegister(e.epoch, e.wrongEpoch, e.discarded)
	return e
}

// epochStatus is the driver's epoch status, or without epochs the
// genesis with this replica a member.
func (n *Node) epochStatus() replica.EpochStatus {
	if st, ok := n.driver.EpochStatus(); ok {
		return st
	}
	return replica.EpochStatus{Config: n.cfg.Genesis, Member: true, Position: n.cfg.Index}
}

// leader is the member index of view's primary in the epoch in force.
func (n *Node) leader(view uint64) int {
	members := n.epochStatus().Config.Members
	if len(members) == 0 {
		return int(view % uint64(max(len(n.cfg.Replicas), 1)))
	}
	index, _ := n.driver.MemberAt(uint32(view % uint64(len(members))))
	return int(index)
}

// replyTarget is the member index to answer a verified replica message
// with core sender position from on: with epochs the transport's sender
// (the message is signed by the key at that position, and travels on
// its sender's own stream), without them the position itself.
func (n *Node) replyTarget(f p2p.Frame, from uint32) uint32 {
	if n.epochs && f.FromIndex >= 0 {
		return uint32(f.FromIndex)
	}
	return from
}
