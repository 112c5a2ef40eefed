package benchmarks

import "slices"

// Attack scenarios (issue 15): one faulty client or replica attacks a
// cluster under the normal honest closed-loop load. A run measures a
// fault-free baseline, then the same load under the attack, then how
// long the honest throughput takes to recover once the attack stops.
const (
	ScenarioBigBurst            = AttackBigBurst
	ScenarioClientFlood         = AttackClientFlood
	ScenarioGarbageClient       = AttackGarbageClient
	ScenarioSlowloris           = AttackSlowloris
	ScenarioNonReadingClient    = AttackNonReading
	ScenarioBadSignatureReplica = "bad-signature-replica"
	ScenarioStaleFloodReplica   = "stale-flood-replica"
	ScenarioBatchRequestFlood   = "batch-request-flood"
	ScenarioSlowPrimary         = "slow-primary"
)

// AttackScenarios lists the attack scenarios, client attacks first.
var AttackScenarios = []string{
	ScenarioBigBurst, ScenarioClientFlood, ScenarioGarbageClient, ScenarioSlowloris, ScenarioNonReadingClient,
	ScenarioBadSignatureReplica, ScenarioStaleFloodReplica, ScenarioBatchRequestFlood, ScenarioSlowPrimary,
}

// attackPlan says who attacks in an attack scenario: an attacking-client
// process (client, an AttackKinds name), or replica replica running the
// byzantine strategy strategy, started inactive (`pbftnode run
// --byzantine STRATEGY --byzantine-toggle`) and switched on by SIGUSR1
// and off by SIGUSR2.
type attackPlan struct {
	client   string
	replica  int
	strategy string
}

// replicaAttack reports whether a replica attacks.
func (p attackPlan) replicaAttack() bool { return p.strategy != "" }

// planFor returns scenario's plan for n replicas, and false for a
// scenario that is not an attack. The flooding replicas are replica n-1,
// a backup that is the primary of neither view 0 nor view 1, so that
// neither the attack nor the view change a correct replica's timeout may
// cause makes it the primary; the slow primary is replica 0, the primary
// of view 0.
func planFor(scenario string, n int) (attackPlan, bool) {
	switch scenario {
	case ScenarioBadSignatureReplica:
		return attackPlan{replica: n - 1, strategy: "bad-signature-flood"}, true
	case ScenarioStaleFloodReplica:
		return attackPlan{replica: n - 1, strategy: "stale-flood"}, true
	case ScenarioBatchRequestFlood:
		return attackPlan{replica: n - 1, strategy: "batch-request-flood"}, true
	case ScenarioSlowPrimary:
		return attackPlan{replica: 0, strategy: "slow-primary"}, true
	}
	if slices.Contains(AttackKinds, scenario) {
		return attackPlan{client: scenario}, true
	}
	return attackPlan{}, false
}

// isAttack reports whether scenario is an attack scenario.
func isAttack(scenario string) bool {
	_, ok := planFor(scenario, 4)
	return ok
}
