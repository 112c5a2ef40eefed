package gateway

import "encoding/json"

// Receipt is the receipt the cluster signed for an ordered operation, as
// the gateway puts it in an answer's "receipt" field.
//
// Placeholder until package receipt lands: then Receipt = receipt.Receipt.
type Receipt = json.RawMessage
