// Command grpc runs a gRPC server and client on loopback. The server is
// flaky and rate-limits each client; the client runs the standard pipeline
// through resiliencegrpc's interceptors, and prints each retry it makes and
// the result of each call.
//
//	go run ./examples/grpc
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/resiliencegrpc"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

func main() {
	// The server: at most 5 calls a second per client, bursts of 5.
	lim := ratelimit.NewKeyed(5, 5)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(resiliencegrpc.UnaryServerInterceptor(lim)),
		grpc.ChainStreamInterceptor(resiliencegrpc.StreamServerInterceptor(lim)))
	testgrpc.RegisterTestServiceServer(srv, &flaky{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	defer func() {
		srv.Stop()
		<-served
	}()

	// The client: the standard pipeline; every method of the service is
	// idempotent, so failed calls may be retried.
	p, err := standard.New(standard.WithRetry(retry.WithOnRetry(func(ctx context.Context, e retry.Event) {
		from := "backoff"
		if e.Pushback {
			from = "server's pushback"
		}
		fmt.Printf("  attempt %d: %v; retrying in %v (%s)\n", e.Attempt, status.Code(e.Err), e.Wait.Round(time.Millisecond), from)
	})))
	if err != nil {
		log.Fatal(err)
	}
	c := resiliencegrpc.NewClient(p, resiliencegrpc.WithIdempotentMethods("/grpc.testing.TestService/*"))
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(), // the interceptors retry; grpc-go's own retry would multiply attempts
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	ctx := context.Background()

	fmt.Println("unary call to a server that is warming up:")
	_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	fmt.Println("  result:", status.Code(err))

	fmt.Println("server stream that fails before its first message:")
	stream, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		log.Fatal(err)
	}
	n := 0
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
		n++
	}
	if err == io.EOF {
		err = nil
	}
	fmt.Printf("  result: %v, %d messages\n", status.Code(err), n)

	fmt.Println("a burst of 6 calls against the rate limit:")
	for i := range 6 {
		start := time.Now()
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		fmt.Printf("  call %d: %v after %v\n", i+1, status.Code(err), time.Since(start).Round(10*time.Millisecond))
	}
}

// flaky fails its first two unary calls and its first stream.
type flaky struct {
	testgrpc.UnimplementedTestServiceServer
	unary, streams atomic.Int32
}

func (f *flaky) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if f.unary.Add(1) <= 2 {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &testgrpc.SimpleResponse{}, nil
}

func (f *flaky) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, ss grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	if f.streams.Add(1) == 1 {
		return status.Error(codes.Unavailable, "warming up")
	}
	for range 3 {
		if err := ss.Send(&testgrpc.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return nil
}
