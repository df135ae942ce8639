package resiliencegrpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
)

// The incoming call's description stays with the server's policies: a
// handler's own outbound work is not taken for the incoming call (not
// idempotent, keyed by the client's address).
func TestServerCallDoesNotLeakIntoHandler(t *testing.T) {
	type seen struct {
		inCall   bool
		attempts int
		err      error
		attrs    int
	}
	got := make(chan seen, 2)
	outbound := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(time.Millisecond, time.Millisecond))
	handler := func(ctx context.Context) seen {
		var s seen
		_, s.inCall = resilience.CallFrom(ctx)
		// A bare resilience.Do runs as outside any call: retried.
		s.err = outbound.Do(ctx, func(context.Context) error {
			s.attempts++
			if s.attempts < 3 {
				return errors.New("transient")
			}
			return nil
		})
		// An outbound call described in the handler records its target.
		octx := resilience.WithCall(ctx, resilience.Call{Target: "backend:443", Method: "GET"})
		s.attrs = len(telemetry.CallAttrs(octx, nil))
		return s
	}
	s := &server{
		unary: func(ctx context.Context, _ int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
			got <- handler(ctx)
			return &testgrpc.SimpleResponse{}, nil
		},
		out: func(_ int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
			got <- handler(ss.Context())
			return nil
		},
	}
	lim := ratelimit.NewKeyed(1000, 10)
	c := dial(t, start(t, s,
		grpc.ChainUnaryInterceptor(UnaryServerInterceptor(lim)),
		grpc.ChainStreamInterceptor(StreamServerInterceptor(lim))), nil)
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recvAll(stream.Recv); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"unary", "stream"} {
		s := <-got
		if s.inCall {
			t.Errorf("%s: the handler's context describes the incoming call", kind)
		}
		if s.err != nil || s.attempts != 3 {
			t.Errorf("%s: outbound work made %d attempts, %v; want 3, nil (retried as outside any call)", kind, s.attempts, s.err)
		}
		if s.attrs != 3 {
			t.Errorf("%s: outbound call has %d attributes, want 3 (server.address, server.port and the method)", kind, s.attrs)
		}
	}
}
