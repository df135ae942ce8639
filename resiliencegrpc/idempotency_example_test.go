package resiliencegrpc_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/resiliencegrpc"
	"github.com/resilience-go/resilience/retry"
)

// The server records each keyed call's reply; the first attempt fails with
// Unavailable, which is not recorded, and the client's retry runs it. A
// repeat of the key later gets the recorded reply, marked. (An
// idempotency.Keyer among the client's policies stamps keys on calls that
// have none.)
func ExampleIdempotencyServerInterceptor() {
	addr, stop := serve(grpc.ChainUnaryInterceptor(
		resiliencegrpc.IdempotencyServerInterceptor(idempotency.NewMemoryStore())))
	defer stop()

	client := resiliencegrpc.NewClient(retry.New(retry.WithBackoff(time.Millisecond, time.Millisecond)))
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(client.UnaryInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	c := testgrpc.NewTestServiceClient(conn)

	ctx := metadata.AppendToOutgoingContext(context.Background(), resiliencegrpc.IdempotencyKey, "order-42")
	for range 2 {
		var header metadata.MD
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&header))
		fmt.Println(resp.GetUsername(), err, header.Get(resiliencegrpc.ReplayedMetadata))
	}
	// Output:
	// gopher <nil> []
	// gopher <nil> [true]
}
