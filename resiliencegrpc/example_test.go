package resiliencegrpc_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencegrpc"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

// flaky fails every other call with Unavailable.
type flaky struct {
	testgrpc.UnimplementedTestServiceServer
	calls atomic.Int32
}

func (f *flaky) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if f.calls.Add(1)%2 == 1 {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &testgrpc.SimpleResponse{Username: "gopher"}, nil
}

// serve serves the test service on a loopback port; stop it when done.
func serve(opts ...grpc.ServerOption) (addr string, stop func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, &flaky{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	return lis.Addr().String(), func() {
		srv.Stop()
		<-done
	}
}

func ExampleNewClient() {
	addr, stop := serve()
	defer stop()

	c := resiliencegrpc.NewClient(resilience.Chain(
		timeout.New(5*time.Second), // the whole call
		retry.New(retry.WithBackoff(10*time.Millisecond, time.Second)),
		timeout.New(time.Second), // each attempt
	), resiliencegrpc.WithIdempotentMethods("/grpc.testing.TestService/UnaryCall"))
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("hello,", resp.Username)
	// Output: hello, gopher
}

func ExampleStandard() {
	addr, stop := serve()
	defer stop()

	// Built once and shared by every call on the connection.
	c, err := resiliencegrpc.Standard(
		resiliencegrpc.WithIdempotentMethods("/grpc.testing.TestService/*"),
		resiliencegrpc.WithPipeline(standard.WithAttemptTimeout(time.Second)))
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("hello,", resp.Username)
	// Output: hello, gopher
}

func ExampleUnaryServerInterceptor() {
	// One call a minute per client address.
	lim := ratelimit.NewKeyed(rate.Every(time.Minute), 1)
	addr, stop := serve(
		grpc.ChainUnaryInterceptor(resiliencegrpc.UnaryServerInterceptor(lim)),
		grpc.ChainStreamInterceptor(resiliencegrpc.StreamServerInterceptor(lim)))
	defer stop()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)

	for range 3 {
		var trailer metadata.MD
		_, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
		fmt.Println(status.Code(err), len(trailer.Get(resiliencegrpc.PushbackTrailer)) == 1)
	}
	// Output:
	// Unavailable false
	// ResourceExhausted true
	// ResourceExhausted true
}

func ExampleMarkAttempts() {
	addr, stop := serve()
	defer stop()

	// In a program: the global tracer provider of an SDK with an exporter.
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	c := resiliencegrpc.NewClient(retry.New(retry.WithBackoff(10*time.Millisecond, time.Second)),
		resiliencegrpc.WithIdempotentMethods("/grpc.testing.TestService/UnaryCall"))
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// One client span per attempt, carrying its number.
		grpc.WithStatsHandler(resiliencegrpc.MarkAttempts(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider())))),
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	if _, err := testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
		log.Fatal(err)
	}
	for _, s := range spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "resilience.attempt" {
				fmt.Println(s.Name(), a.Key, a.Value.String())
			}
		}
	}
	// Output:
	// grpc.testing.TestService/UnaryCall resilience.attempt 1
	// grpc.testing.TestService/UnaryCall resilience.attempt 2
}
