package cryptoceiling

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pbftnode/pbftnode/wire"
)

func TestMeasure(t *testing.T) {
	for _, n := range []int{1, 4} {
		c, err := Measure(context.Background(), n, 50*time.Millisecond, 0)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if c.OpsPerSecond <= 0 || c.SignNanos <= 0 || c.VerifyNanos <= 0 {
			t.Errorf("n=%d: non-positive measurement %+v", n, c)
		}
		if c.Verifications != n || c.Workers < 1 || c.Batch < 1 {
			t.Errorf("n=%d: got %+v", n, c)
		}
		t.Logf("n=%d: %s", n, c)
	}
}

func TestMeasureRejectsBadArguments(t *testing.T) {
	if _, err := Measure(context.Background(), 0, time.Millisecond, 1); err == nil {
		t.Error("n=0 accepted")
	}
	if _, err := Measure(context.Background(), 4, 0, 1); err == nil {
		t.Error("d=0 accepted")
	}
}

func TestCeilingRequestMatchesClientEncoding(t *testing.T) {
	// 16-byte key and value, as the brief of the measurement says.
	p, err := ceilingRequest(make([]byte, 32), 1_700_000_000_000_000_001)
	if err != nil {
		t.Fatal(err)
	}
	var req wire.Request
	if err := proto.Unmarshal(p, &req); err != nil {
		t.Fatal(err)
	}
	var op wire.KVOperation
	if err := proto.Unmarshal(req.Operation, &op); err != nil {
		t.Fatal(err)
	}
	put := op.GetPut()
	if put == nil || len(put.Key) != 16 || len(put.Value) != 16 || req.RequestNumber != 1_700_000_000_000_000_001 {
		t.Errorf("request %v, operation %v", &req, &op)
	}
}
