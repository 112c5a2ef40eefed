package protocol

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DescribeLog returns a one-line-per-slot description of the log in
// memory, for diagnosing a stalled replica (status tools, the simulator's
// failure reports).
func (r *Replica) DescribeLog() string {
	var b strings.Builder
	for _, seq := range slices.Sorted(maps.Keys(r.slots)) {
		s := r.slots[seq]
		_, prepared := r.prepared[seq]
		fmt.Fprintf(&b, "  seq %d view %d digest %s pre-prepare %v batch %v prepares %d/%d commits %d/%d prepared %v(cert %v) committed %v own-prepare %v own-commit %v\n",
			seq, s.view, s.digest, s.prePrepare != nil, s.batch != nil,
			matching(s.prepares, s.digest), len(s.prepares), matching(s.commits, s.digest), len(s.commits),
			s.prepared, prepared, s.committed, s.prepares[r.cfg.ID].signed != nil, s.commits[r.cfg.ID].signed != nil)
	}
	return b.String()
}
