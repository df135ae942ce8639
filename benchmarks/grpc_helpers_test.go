package benchmarks

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/resiliencegrpc"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

// Names of the test service that the gRPC benchmark and scenarios call.
const (
	grpcService     = "grpc.testing.TestService"
	unaryMethod     = "/grpc.testing.TestService/UnaryCall"
	cacheableMethod = "/grpc.testing.TestService/CacheableUnaryCall"
	outMethod       = "/grpc.testing.TestService/StreamingOutputCall"
)

type outStream = grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]

// grpcServer is a loopback gRPC test service whose handlers a test sets.
// Each handler gets the 1-based number of the call, counted across
// methods; the arrival time of every call is recorded.
type grpcServer struct {
	testgrpc.UnimplementedTestServiceServer
	unary func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error)
	out   func(n int, ss outStream) error

	arrivals
}

func (s *grpcServer) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return s.unary(ctx, s.arrive())
}

func (s *grpcServer) CacheableUnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return s.unary(ctx, s.arrive())
}

func (s *grpcServer) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
	return s.out(s.arrive(), ss)
}

// calls returns how many calls the server's handlers received.
func (s *grpcServer) calls() int { return s.count() }

// startGRPC serves s on a loopback port until the test ends and returns
// its address.
func startGRPC(t testing.TB, s *grpcServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, s)
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(lis) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return lis.Addr().String()
}

// dialGRPC connects to addr with opts, over plaintext, until the test ends.
func dialGRPC(t testing.TB, addr string, opts ...grpc.DialOption) testgrpc.TestServiceClient {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// interceptors installs c's unary and stream interceptors on a connection.
func interceptors(c *resiliencegrpc.Client) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamInterceptor()),
	}
}

// retryServiceConfig is a service config that turns on grpc-go's built-in
// retry for methods (full names; none means every method of the test
// service), with the same budget as our retry's defaults: 4 attempts,
// backoff from 100ms growing 2x up to maxBackoff (ours: 10s), retrying
// UNAVAILABLE only. grpc-go spreads each delay by a random factor in
// [0.8, 1.2]; ours by [0.5, 1.5].
func retryServiceConfig(maxBackoff string, methods ...string) string {
	names := fmt.Sprintf(`{"service":%q}`, grpcService)
	if len(methods) > 0 {
		names = ""
		for i, m := range methods {
			if i > 0 {
				names += ","
			}
			svc, meth := splitMethod(m)
			names += fmt.Sprintf(`{"service":%q,"method":%q}`, svc, meth)
		}
	}
	return `{"methodConfig":[{"name":[` + names + `],"retryPolicy":{` +
		`"maxAttempts":4,"initialBackoff":"0.1s","maxBackoff":` + fmt.Sprintf("%q", maxBackoff) + `,"backoffMultiplier":2,` +
		`"retryableStatusCodes":["UNAVAILABLE"]}}]}`
}

// splitMethod splits "/pkg.Service/Method" into its service and method.
func splitMethod(full string) (service, method string) {
	for i := len(full) - 1; i > 0; i-- {
		if full[i] == '/' {
			return full[1:i], full[i+1:]
		}
	}
	panic("benchmarks: not a full method name: " + full)
}

// oursChain is the pipeline of package resiliencegrpc's documentation:
// a total timeout, retry with its defaults (plus retryOpts), and a
// per-attempt timeout.
func oursChain(retryOpts ...retry.Option) resilience.Policy {
	return resilience.Chain(timeout.New(30*time.Second), retry.New(retryOpts...), timeout.New(10*time.Second))
}

// oursStandardPolicy is standard.New with its defaults, plus retryOpts.
func oursStandardPolicy(t testing.TB, retryOpts ...retry.Option) resilience.Policy {
	t.Helper()
	var opts []standard.Option
	if len(retryOpts) > 0 {
		opts = append(opts, standard.WithRetry(retryOpts...))
	}
	p, err := standard.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
