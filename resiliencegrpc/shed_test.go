package resiliencegrpc

import (
	"context"
	"maps"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/shed"
)

// startShed serves srv and the health service on a loopback port, through
// the shedding interceptors of s, and returns a connection to it (without
// client interceptors) and its address.
func startShed(t *testing.T, srv *server, s *shed.Shedder, opts ...ShedOption) (*grpc.ClientConn, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(ShedUnaryServerInterceptor(s, opts...)),
		grpc.ChainStreamInterceptor(ShedStreamServerInterceptor(s, opts...)))
	testgrpc.RegisterTestServiceServer(g, srv)
	healthpb.RegisterHealthServer(g, health.NewServer())
	var wg sync.WaitGroup
	wg.Go(func() { g.Serve(lis) })
	t.Cleanup(func() {
		g.Stop()
		wg.Wait()
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, lis.Addr().String()
}

// blockingServer is a test service whose unary and output-stream calls
// wait until release is closed; entered receives once per call.
func blockingServer() (*server, chan struct{}, chan struct{}) {
	entered, release := make(chan struct{}, 100), make(chan struct{})
	srv := &server{
		unary: func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
			if string(req.GetPayload().GetBody()) == "block" {
				entered <- struct{}{}
				<-release
			}
			return &testgrpc.SimpleResponse{}, nil
		},
		out: func(n int, req *testgrpc.StreamingOutputCallRequest, ss outStream) error {
			return ss.Send(&testgrpc.StreamingOutputCallResponse{})
		},
	}
	return srv, entered, release
}

func withPriority(p string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), PriorityMetadata, p)
}

func TestShedInterceptors(t *testing.T) {
	srv, entered, release := blockingServer()
	s := shed.New(shed.Fixed(1), shed.WithQueue(0, 0))
	conn, _ := startShed(t, srv, s)
	c := testgrpc.NewTestServiceClient(conn)
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{Payload: payload("block")}); err != nil {
			t.Errorf("call in flight: %v", err)
		}
	})
	<-entered

	// Unary: Unavailable with pushback, the handler not run.
	var trailer metadata.MD
	_, err := c.UnaryCall(withPriority("critical"), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	wantCode(t, err, codes.Unavailable)
	if got := trailer.Get(PushbackTrailer); len(got) != 1 || got[0] != "1000" {
		t.Errorf("pushback trailer %q, want [1000]", got)
	}
	// Stream: the same.
	st, err := c.StreamingOutputCall(context.Background(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	wantCode(t, err, codes.Unavailable)
	if got := st.Trailer().Get(PushbackTrailer); len(got) != 1 || got[0] != "1000" {
		t.Errorf("stream pushback trailer %q, want [1000]", got)
	}
	wantCalls(t, srv, 1)

	// Health checks are never shed.
	hc := healthpb.NewHealthClient(conn)
	if resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check at the limit: %v, %v; want SERVING", resp, err)
	}
	close(release)
	wg.Wait()
}

// TestShedPriorityFromMetadata checks that a critical call pushes a
// sheddable one out of the full queue, by their metadata.
func TestShedPriorityFromMetadata(t *testing.T) {
	srv, entered, release := blockingServer()
	s := shed.New(shed.Fixed(1), shed.WithQueue(1, time.Minute))
	conn, _ := startShed(t, srv, s)
	c := testgrpc.NewTestServiceClient(conn)
	var wg sync.WaitGroup
	wg.Go(func() { c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{Payload: payload("block")}) })
	<-entered
	sheddable := make(chan error, 1)
	wg.Go(func() {
		_, err := c.UnaryCall(withPriority("sheddable"), &testgrpc.SimpleRequest{})
		sheddable <- err
	})
	for _, q := s.InFlight(); q != 1; _, q = s.InFlight() {
		time.Sleep(time.Millisecond)
	}
	critical := make(chan error, 1)
	wg.Go(func() {
		_, err := c.UnaryCall(withPriority("critical"), &testgrpc.SimpleRequest{})
		critical <- err
	})
	err := <-sheddable
	wantCode(t, err, codes.Unavailable)
	if msg := status.Convert(err).Message(); msg != "shed: sheddable request shed (priority); retry after 1s" {
		t.Errorf("message %q", msg)
	}
	close(release)
	if err := <-critical; err != nil {
		t.Errorf("critical call: %v", err)
	}
	wg.Wait()
}

func TestShedDrainGRPC(t *testing.T) {
	srv, entered, release := blockingServer()
	s := shed.New(shed.Fixed(4))
	conn, _ := startShed(t, srv, s)
	c := testgrpc.NewTestServiceClient(conn)
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{Payload: payload("block")}); err != nil {
			t.Errorf("call in flight during the drain: %v", err)
		}
	})
	<-entered
	drained := make(chan error, 1)
	wg.Go(func() { drained <- s.Drain(context.Background()) })
	for !s.Draining() {
		time.Sleep(time.Millisecond)
	}
	_, err := c.UnaryCall(withPriority("critical"), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	hc := healthpb.NewHealthClient(conn)
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check while draining: %v", err)
	}
	close(release)
	if err := <-drained; err != nil {
		t.Errorf("Drain = %v", err)
	}
	wg.Wait()
}

// TestStandardClientBacksOffShed composes the library's gRPC client
// (Standard) with the shedding interceptor at overload: the first shed's
// pushback, the first answer this client had from the server, closes the
// client's gate (half of the last answers pushed back), and the calls that
// follow wait instead of being sent and shed.
func TestStandardClientBacksOffShed(t *testing.T) {
	const calls = 40
	srv, entered, release := blockingServer()
	var sent, shedCount atomic.Int64
	s := shed.New(shed.Fixed(2), shed.WithQueue(0, 0))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if string(req.(*testgrpc.SimpleRequest).GetPayload().GetBody()) != "block" {
			sent.Add(1)
		}
		resp, err := handler(ctx, req)
		if status.Code(err) == codes.Unavailable {
			shedCount.Add(1)
		}
		return resp, err
	}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(count, ShedUnaryServerInterceptor(s)))
	testgrpc.RegisterTestServiceServer(g, srv)
	var wg sync.WaitGroup
	wg.Go(func() { g.Serve(lis) })
	defer func() {
		g.Stop()
		wg.Wait()
	}()
	plain := dial(t, lis.Addr().String(), nil)
	var calling sync.WaitGroup
	for range 2 {
		calling.Go(func() { plain.UnaryCall(context.Background(), &testgrpc.SimpleRequest{Payload: payload("block")}) })
		<-entered
	}

	cl, err := Standard(WithIdempotentMethods(unaryMethod))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, lis.Addr().String(), cl)
	var ok atomic.Int64
	for range calls {
		calling.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
				t.Errorf("call: %v", err)
				return
			}
			ok.Add(1)
		})
		time.Sleep(5 * time.Millisecond) // 40 calls over 200ms, within the 1s pause
	}
	close(release)
	calling.Wait()
	t.Logf("%d calls: %d sent, %d shed", calls, sent.Load(), shedCount.Load())
	if ok.Load() != calls {
		t.Errorf("%d of %d calls succeeded, want all", ok.Load(), calls)
	}
	if n := shedCount.Load(); n > 5 {
		t.Errorf("%d calls shed, want at most 5: the client did not back off", n)
	}
	if n := sent.Load(); n > calls+5 {
		t.Errorf("%d calls sent for %d, want at most %d", n, calls, calls+5)
	}
}

func TestShedInterceptorsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"nil shedder":      func() { ShedUnaryServerInterceptor(nil) },
		"nil health check": func() { ShedStreamServerInterceptor(shed.New(shed.Fixed(1)), WithShedHealthCheck(nil)) },
		"nil priority":     func() { ShedUnaryServerInterceptor(shed.New(shed.Fixed(1)), WithShedPriority(nil)) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// TestShedTelemetryGRPC checks the call attributes of a call shed by the
// interceptor: its rpc.method, never the client's address.
func TestShedTelemetryGRPC(t *testing.T) {
	h := telemetrytest.New(t)
	srv, entered, release := blockingServer()
	s := shed.New(shed.Fixed(1), shed.WithQueue(0, 0), shed.WithMeterProvider(h.MeterProvider))
	conn, _ := startShed(t, srv, s)
	c := testgrpc.NewTestServiceClient(conn)
	var wg sync.WaitGroup
	wg.Go(func() { c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{Payload: payload("block")}) })
	<-entered
	_, err := c.UnaryCall(withPriority("sheddable"), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	close(release)
	wg.Wait()
	got := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	want := telemetrytest.Want(map[string]int64{
		"resilience.policy=shed resilience.event=rejected resilience.reason=limit resilience.priority=sheddable rpc.method=grpc.testing.TestService/UnaryCall": 1,
	})
	if !maps.Equal(got, want) {
		t.Errorf("resilience.events\n got %v\nwant %v", got, want)
	}
	runtime.KeepAlive(s)
}
