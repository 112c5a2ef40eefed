package client

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

// FuzzHandleReply feeds arbitrary reply bytes, from any claimed replica
// index, to a client with one outstanding call: it must never panic, and a
// single frame can never complete a call that needs two matching replies.
func FuzzHandleReply(f *testing.F) {
	c := newTestClient(&testing.T{}, 64)
	good, _ := proto.Marshal(&wire.Reply{ClientId: c.id, RequestNumber: 1, Replica: 1, Result: []byte("ok")})
	f.Add(good, 1)
	f.Add([]byte{0xff, 0x00}, 0)
	f.Add([]byte{}, -1)
	f.Add(good, 9)
	f.Fuzz(func(t *testing.T, data []byte, from int) {
		c := newTestClient(t, 64)
		cl := mustBegin(t, c)
		c.handleReply(replyFrameRaw(from, data))
		select {
		case <-cl.done:
			t.Fatalf("one frame completed a call that needs 2 matching replies")
		default:
		}
	})
}
