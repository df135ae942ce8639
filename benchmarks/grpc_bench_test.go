package benchmarks

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/resilience-go/resilience/resiliencegrpc"
)

// BenchmarkGRPCUnary is the success path of a unary call to a loopback
// gRPC server, one server for every contender, each on its own connection:
// the bare call, grpc-go's built-in retry turned on by a service config,
// and our interceptors.
func BenchmarkGRPCUnary(b *testing.B) {
	s := &grpcServer{unary: func(context.Context, int) (*testgrpc.SimpleResponse, error) {
		return &testgrpc.SimpleResponse{Username: "ok"}, nil
	}}
	addr := startGRPC(b, s)
	idem := resiliencegrpc.WithIdempotentMethods(unaryMethod)

	for _, bc := range []struct {
		name     string
		opts     func(b *testing.B) []grpc.DialOption
		deadline bool // the caller sets a deadline on each call
	}{
		{"bare", func(*testing.B) []grpc.DialOption { return nil }, false},
		// grpc-go's retry machinery is on by default, policy or not:
		// this is the call without it.
		{"bare-retry-disabled", func(*testing.B) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithDisableRetry()}
		}, false},
		// What a caller without a library writes: a deadline per call.
		// gRPC sends it (grpc-timeout) and the server arms a timer for it;
		// our timeouts give every call a deadline too.
		{"bare-with-deadline", func(*testing.B) []grpc.DialOption { return nil }, true},
		{"grpc-go-retry", func(*testing.B) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithDefaultServiceConfig(retryServiceConfig("10s", unaryMethod))}
		}, false},
		{"resilience-timeout+retry+timeout", func(*testing.B) []grpc.DialOption {
			return interceptors(resiliencegrpc.NewClient(oursChain(), idem))
		}, false},
		{"resilience-standard", func(b *testing.B) []grpc.DialOption {
			return interceptors(resiliencegrpc.NewClient(oursStandardPolicy(b), idem))
		}, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := dialGRPC(b, addr, bc.opts(b)...)
			ctx := context.Background()
			req := &testgrpc.SimpleRequest{}
			call := func() error {
				if bc.deadline {
					ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					_, err := c.UnaryCall(ctx, req)
					return err
				}
				_, err := c.UnaryCall(ctx, req)
				return err
			}
			if err := call(); err != nil { // connect outside the loop
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
