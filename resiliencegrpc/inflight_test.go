package resiliencegrpc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/standard"
)

// A keyed call whose attempt times out while the server still places the
// order: the next attempt, with the same key, is answered Aborted (in
// flight) with a pushback trailer while the first runs. The client waits
// and asks again with the key, and the caller gets the order's reply,
// never Aborted for an order that was placed, with retries and with
// hedging.
func TestKeyedRetryWaitsForTheCallInFlight(t *testing.T) {
	t.Parallel()
	const method = "/grpc.testing.TestService/UnaryCall"
	for _, tt := range []struct {
		name string
		opts []standard.Option
	}{
		{"retry", nil},
		{"hedging", []standard.Option{standard.WithHedging()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu     sync.Mutex
				placed []string
			)
			s := &server{unary: func(ctx context.Context, _ int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
				time.Sleep(300 * time.Millisecond) // the order is placed whether or not the client waits
				mu.Lock()
				defer mu.Unlock()
				placed = append(placed, metadata.ValueFromIncomingContext(ctx, IdempotencyKey)[0])
				return &testgrpc.SimpleResponse{Payload: payload(fmt.Sprintf("order %d", len(placed)))}, nil
			}}
			addr := start(t, s, grpc.ChainUnaryInterceptor(IdempotencyServerInterceptor(idempotency.NewMemoryStore())))
			client, err := Standard(WithPipeline(append([]standard.Option{
				standard.WithIdempotencyKeys(method),
				standard.WithAttemptTimeout(100 * time.Millisecond),
			}, tt.opts...)...))
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, addr, client)
			created := 0
			for i := range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: payload(fmt.Sprint(i))})
				cancel()
				if err != nil {
					t.Errorf("order %d: %v", i, err)
					continue
				}
				created++
				if got, want := string(r.GetPayload().GetBody()), fmt.Sprintf("order %d", i+1); got != want {
					t.Errorf("order %d: reply %q, want %q", i, got, want)
				}
			}
			mu.Lock()
			n := len(placed)
			mu.Unlock()
			if n != 5 || created != 5 {
				t.Fatalf("%d orders placed, %d reported created; want 5 and 5", n, created)
			}
		})
	}
}
