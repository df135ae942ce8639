package resiliencegrpc

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Full method names of the test service.
const (
	unaryMethod  = "/grpc.testing.TestService/UnaryCall"
	outMethod    = "/grpc.testing.TestService/StreamingOutputCall"
	inMethod     = "/grpc.testing.TestService/StreamingInputCall"
	duplexMethod = "/grpc.testing.TestService/FullDuplexCall"
	allMethods   = "/grpc.testing.TestService/*"
)

type (
	outStream    = grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]
	inStream     = grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]
	duplexStream = grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]
)

// server is a test service whose handlers the tests set; n is the number
// of the call to the handler, from 1.
type server struct {
	testgrpc.UnimplementedTestServiceServer
	calls  atomic.Int32
	unary  func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error)
	out    func(n int, req *testgrpc.StreamingOutputCallRequest, ss outStream) error
	in     func(n int, ss inStream) error
	duplex func(n int, ss duplexStream) error
}

func (s *server) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return s.unary(ctx, int(s.calls.Add(1)), req)
}

func (s *server) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, ss outStream) error {
	return s.out(int(s.calls.Add(1)), req, ss)
}

func (s *server) StreamingInputCall(ss inStream) error { return s.in(int(s.calls.Add(1)), ss) }

func (s *server) FullDuplexCall(ss duplexStream) error { return s.duplex(int(s.calls.Add(1)), ss) }

func (s *server) n() int { return int(s.calls.Load()) }

// start serves s on a loopback port until the test ends and returns its
// address.
func start(t testing.TB, s *server, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, s)
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(lis) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return lis.Addr().String()
}

// dial connects to addr through c's interceptors (none if c is nil) until
// the test ends.
func dial(t testing.TB, addr string, c *Client) testgrpc.TestServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if c != nil {
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
			grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// fastRetry retries at once, or nearly: the tests check what is retried,
// not how long the waits are.
func fastRetry(opts ...retry.Option) *retry.Policy {
	return retry.New(append([]retry.Option{retry.WithBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
}

var errUnavailable = status.Error(codes.Unavailable, "down")

func payload(s string) *testgrpc.Payload { return &testgrpc.Payload{Body: []byte(s)} }

// wantCode fails the test unless err has status code want.
func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status code %v (error %v), want %v", got, err, want)
	}
}

// wantCalls fails the test unless the server's handlers ran want times.
func wantCalls(t *testing.T, s *server, want int) {
	t.Helper()
	if got := s.n(); got != want {
		t.Errorf("server handled %d calls, want %d", got, want)
	}
}
