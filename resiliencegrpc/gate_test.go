package resiliencegrpc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pushbackgate "github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/standard"
)

// A server's pushback closes the standard pipeline's gate for its target:
// the next call goes out only once the pushback has passed, and a call
// that cannot wait gets ResourceExhausted at once, matching
// pushback.ErrClosed. Real time; only lower bounds are checked.
func TestStandardGateHoldsAfterGRPCPushback(t *testing.T) {
	const pause = 300 * time.Millisecond
	var mu sync.Mutex
	var arrived []time.Time
	s := &server{unary: func(ctx context.Context, n int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		mu.Lock()
		arrived = append(arrived, time.Now())
		mu.Unlock()
		if n == 1 {
			grpc.SetTrailer(ctx, metadata.MD{PushbackTrailer: {"300"}})
			return nil, status.Error(codes.ResourceExhausted, "slow down")
		}
		return &testgrpc.SimpleResponse{}, nil
	}}
	p, err := standard.New(standard.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(allMethods)))

	before := time.Now()
	_, err = client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.ResourceExhausted)

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = client.UnaryCall(short, &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.ResourceExhausted)
	if !errors.Is(err, pushbackgate.ErrClosed) {
		t.Fatalf("short call: %v, want a match for pushback.ErrClosed", err)
	}
	wantCalls(t, s, 1)

	if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("held call: %v", err)
	}
	wantCalls(t, s, 2)
	mu.Lock()
	defer mu.Unlock()
	if d := arrived[1].Sub(before); d < pause {
		t.Fatalf("second call reached the server %v after the first was sent, want at least the pushback %v", d, pause)
	}
}

// One call's pushback among answers that were all OK is about that call
// (a tenant's or a method's quota), not the target: the next call goes at
// once. (Before, every pushback closed the gate for the target.)
func TestOneCallsPushbackDoesNotHoldTheTarget(t *testing.T) {
	s := &server{unary: func(ctx context.Context, _ int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		if string(req.GetPayload().GetBody()) == "tenant-b" {
			grpc.SetTrailer(ctx, metadata.MD{PushbackTrailer: {"1000"}})
			return nil, status.Error(codes.ResourceExhausted, "tenant b: slow down")
		}
		return &testgrpc.SimpleResponse{}, nil
	}}
	p, err := standard.New(standard.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(allMethods)))
	for range 20 {
		if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{Payload: payload("tenant-a")}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{Payload: payload("tenant-b")})
	wantCode(t, err, codes.ResourceExhausted)
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := client.UnaryCall(short, &testgrpc.SimpleRequest{Payload: payload("tenant-a")}); err != nil {
		t.Fatalf("tenant A's call after tenant B's pushback: %v, want it sent at once", err)
	}
	wantCalls(t, s, 22)
}
