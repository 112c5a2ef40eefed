package gateway_test

import (
	"encoding/json"
	"testing"
)

// verifyReceipt fails unless raw is a receipt that verifies against the
// cluster file at clusterPath.
// Placeholder until package receipt lands.
func verifyReceipt(t *testing.T, clusterPath, what string, raw json.RawMessage) {
	t.Helper()
	t.Logf("%s: receipt %d bytes (not verified yet: %s)", what, len(raw), clusterPath)
}
