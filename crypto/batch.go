package crypto

// VerifyBatch checks jobs on the calling goroutine and returns one result
// per job, in order: true exactly when Verify would return true for that
// job under clusterID. It is the verification kernel of the engine's
// client-request path (a Pool runs it on its workers) and of
// MeasureCeiling.
func VerifyBatch(clusterID string, jobs []VerifyJob) []bool {
	results := make([]bool, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		results[i] = Verify(j.PublicKey, clusterID, j.Domain, j.Payload, j.Signature)
	}
	return results
}
