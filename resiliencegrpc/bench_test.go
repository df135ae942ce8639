package resiliencegrpc

import (
	"context"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

// BenchmarkUnary measures the interceptor's overhead on a successful unary
// call over loopback, against the bare call in the same run.
func BenchmarkUnary(b *testing.B) {
	s := &server{unary: func(context.Context, int, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		return &testgrpc.SimpleResponse{}, nil
	}}
	addr := start(b, s)
	std, err := standard.New()
	if err != nil {
		b.Fatal(err)
	}
	idem := WithIdempotentMethods(unaryMethod)
	clients := []struct {
		name     string
		c        *Client
		deadline bool // the caller sets one
	}{
		{"bare", nil, false},
		{"bare-deadline", nil, true},
		{"no-policy", NewClient(nil), false},
		{"retry", NewClient(retry.New(), idem), false},
		{"retry+timeout", NewClient(resilience.Chain(timeout.New(30*time.Second), retry.New(), timeout.New(10*time.Second)), idem), false},
		{"standard", NewClient(std, idem), false},
	}
	for _, tt := range clients {
		b.Run(tt.name, func(b *testing.B) {
			c := dial(b, addr, tt.c)
			req := &testgrpc.SimpleRequest{}
			ctx := context.Background()
			if tt.deadline {
				// A deadline costs gRPC a timer on both sides, and the
				// server runs in this process.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Hour)
				defer cancel()
			}
			if _, err := c.UnaryCall(ctx, req); err != nil { // connect
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.UnaryCall(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServerStream measures a server stream of ten messages, opened and
// read to the end, with and without the interceptor.
func BenchmarkServerStream(b *testing.B) {
	s := &server{out: func(_ int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		for range 10 {
			if err := ss.Send(&testgrpc.StreamingOutputCallResponse{}); err != nil {
				return err
			}
		}
		return nil
	}}
	addr := start(b, s)
	std, err := standard.New()
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		c    *Client
	}{
		{"bare", nil},
		{"standard", NewClient(std, WithIdempotentMethods(outMethod))},
	} {
		b.Run(tt.name, func(b *testing.B) {
			c := dial(b, addr, tt.c)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				stream, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := recvAll(stream.Recv); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
