package simkit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// CheckHistory reports whether the client history ops is linearizable
// against model (kvmodel.Model, ledgermodel.Model), and, if not, a short
// description of it (its first 40 operations by call time).
func CheckHistory(model porcupine.Model, ops []porcupine.Operation) (bool, string) {
	if porcupine.CheckOperations(model, ops) {
		return true, ""
	}
	sorted := append([]porcupine.Operation(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	var b strings.Builder
	fmt.Fprintf(&b, "history of %d operations is not linearizable:", len(ops))
	for i, o := range sorted {
		if i == 40 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " [c%d %d..%d %s]", o.ClientId, o.Call, o.Return, model.DescribeOperation(o.Input, o.Output))
	}
	return false, b.String()
}
