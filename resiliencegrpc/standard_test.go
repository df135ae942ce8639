package resiliencegrpc

import (
	"context"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// The gRPC preset takes the client's options: declared-idempotent methods
// are retried.
func TestStandardRetriesIdempotentMethods(t *testing.T) {
	s := &server{unary: failing(1, errUnavailable)}
	c, err := Standard(WithIdempotentMethods(unaryMethod),
		WithPipeline(standard.WithRetry(retry.WithBackoff(time.Millisecond, 5*time.Millisecond))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, start(t, s), c).UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("got %v, want the retry's success", err)
	}
	wantCalls(t, s, 2)
}

func TestStandardOptionErrors(t *testing.T) {
	for _, tt := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithIdempotentMethods("nope")}, "resiliencegrpc: WithIdempotentMethods"},
		{[]Option{nil}, "resiliencegrpc: option 0 is nil"},
		{[]Option{WithPipeline(standard.WithRetries(-1))}, "standard: WithRetries"},
	} {
		c, err := Standard(tt.opts...)
		if err == nil || c != nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Standard: got %v, %v; want an error containing %q", c, err, tt.want)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "WithPipeline applies to Standard only") {
			t.Errorf("NewClient with WithPipeline: panic %v", r)
		}
	}()
	NewClient(nil, WithPipeline())
}

// A stream through Standard that is not idempotent is sent once, but the
// attempt timeout still bounds only the time to open it, never the stream.
func TestStandardStreamOutlivesAttemptTimeout(t *testing.T) {
	s := &server{out: func(_ int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if err := sendAll(ss, "a"); err != nil {
			return err
		}
		select {
		case <-time.After(time.Second):
		case <-ss.Context().Done():
			return ss.Context().Err()
		}
		return sendAll(ss, "b")
	}}
	c, err := Standard(WithPipeline(standard.WithAttemptTimeout(250 * time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := dial(t, start(t, s), c).StreamingOutputCall(context.Background(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(stream.Recv)
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("got %q, %v; want a,b (the attempt timeout cut the stream)", got, err)
	}
}

// WithRetries(0) with WithHedging sends one attempt, as it retries
// nothing: a slow call on a real server is not hedged.
func TestStandardNoRetriesNoHedges(t *testing.T) {
	s := &server{unary: func(ctx context.Context, n int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		select {
		case <-time.After(100 * time.Millisecond): // far beyond the hedge delay
		case <-ctx.Done():
		}
		return &testgrpc.SimpleResponse{}, nil
	}}
	c, err := Standard(WithIdempotentMethods(unaryMethod),
		WithPipeline(standard.WithRetries(0), standard.WithHedging(hedge.WithDelay(time.Millisecond))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, start(t, s), c).UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, s, 1)
}
