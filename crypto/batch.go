package crypto

// VerifyBatch checks jobs on the calling goroutine and returns one result
// per job, in order: true exactly when Verify would return true for that
// job under clusterID. It is Verifier.VerifyBatch with a fresh key cache;
// a long-lived caller should keep a Verifier (or a verifypool.Pool) instead.
func VerifyBatch(clusterID string, jobs []VerifyJob) []bool {
	return NewVerifier(clusterID).VerifyBatch(jobs)
}
