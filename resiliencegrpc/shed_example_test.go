package resiliencegrpc_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/resilience-go/resilience/resiliencegrpc"
	"github.com/resilience-go/resilience/shed"
)

// A gRPC server that sheds load (chained first, before rate limits and
// idempotency), whose health service is never shed, and that drains
// before it stops.
func ExampleShedUnaryServerInterceptor() {
	s := shed.New(shed.Fixed(64), shed.WithQueue(128, 50*time.Millisecond))
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(resiliencegrpc.ShedUnaryServerInterceptor(s)),
		grpc.ChainStreamInterceptor(resiliencegrpc.ShedStreamServerInterceptor(s)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(lis)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)

	// Shutdown: stop admitting, wait for the calls in flight, then stop.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println("drained:", s.Drain(ctx))
	srv.GracefulStop()
	// Output:
	// SERVING <nil>
	// drained: <nil>
}
