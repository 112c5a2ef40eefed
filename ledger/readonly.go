package ledger

import (
	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// ReadOnly answers balance and history on the current state, with the
// bytes ExecuteRequest would return for them (see
// execution.ReadOnlyApplication); mint, transfer and malformed operations
// are not read-only. A storage failure makes it not ok.
func (l *Ledger) ReadOnly(clientID, op []byte) ([]byte, bool) {
	var decoded wire.LedgerOperation
	if proto.Unmarshal(op, &decoded) != nil {
		return nil, false
	}
	switch decoded.Op.(type) {
	case *wire.LedgerOperation_Balance, *wire.LedgerOperation_History:
	default:
		return nil, false
	}
	result, err := l.kv.ReadOnlyOutsideBatch(func() []byte { return marshal(l.execute(clientID, op)) })
	if err != nil {
		return nil, false
	}
	return result, true
}
