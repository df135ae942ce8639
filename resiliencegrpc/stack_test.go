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
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/idempotency"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/shed"
	"github.com/resilience-go/resilience/standard"
)

// orderService is a gRPC service whose UnaryCall takes 150ms to place an
// order, whether or not the client still waits, and counts the orders
// placed by idempotency key.
type orderService struct {
	*server
	mu     sync.Mutex
	placed map[string]int
}

func newOrderService() *orderService {
	o := &orderService{placed: map[string]int{}}
	o.server = &server{unary: func(ctx context.Context, _ int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		time.Sleep(150 * time.Millisecond)
		o.mu.Lock()
		defer o.mu.Unlock()
		k := metadata.ValueFromIncomingContext(ctx, IdempotencyKey)
		if len(k) == 1 {
			o.placed[k[0]]++
		}
		return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
	}}
	return o
}

// order sends n keyed calls, from conc goroutines at once, and requires
// each reply to be its own order's, and each order placed at most once
// (once if the caller got its reply). With strict, a caller told an error
// fails the test.
func (o *orderService) order(t *testing.T, c testgrpc.TestServiceClient, n, conc int, strict bool) {
	t.Helper()
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var (
		mu     sync.Mutex
		failed []string
		ok     int
	)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "tenant", "a"), 20*time.Second)
			defer cancel()
			want := fmt.Sprint("order ", i)
			r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: payload(want)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed = append(failed, status.Code(err).String())
				if strict {
					t.Errorf("%s: %v", want, err)
				}
			case string(r.GetPayload().GetBody()) != want:
				t.Errorf("%s: reply %q", want, r.GetPayload().GetBody())
			default:
				ok++
			}
		})
	}
	wg.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	t.Logf("%d callers got their reply, the others %v", ok, failed)
	total := 0
	for k, runs := range o.placed {
		total += runs
		if runs > 1 {
			t.Errorf("order with key %s placed %d times", k, runs)
		}
	}
	if total < ok || total > n {
		t.Errorf("%d orders placed, %d callers got their reply, %d calls", total, ok, n)
	}
	clear(o.placed)
}

func tenantOf(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, "tenant"); len(v) == 1 {
		return v[0]
	}
	return ""
}

// DESIGN rules 11 and 12 over gRPC: Standard with idempotency keys and an
// attempt timeout (100ms) shorter than an order (150ms), with retries and
// with hedging, against the server chain of the README: load shedding (one
// call at a time) → rate limit (5 a second per tenant) → idempotency →
// handler. One after the other, every order is placed once and every
// caller gets its reply, whatever the server answered on the way
// (Unavailable shed, ResourceExhausted, Aborted in flight, each with
// pushback); three at a time, no order is placed twice.
func TestOurClientAgainstOurWholeServerGRPC(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts []standard.Option
	}{
		{"retry", nil},
		{"hedging", []standard.Option{standard.WithHedging()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOrderService()
			quota := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 5, Window: time.Second})
			addr := start(t, o.server, grpc.ChainUnaryInterceptor(
				ShedUnaryServerInterceptor(shed.New(shed.Fixed(1), shed.WithQueue(0, 0))),
				UnaryServerInterceptor(ratelimit.Enforce(quota, tenantOf)),
				IdempotencyServerInterceptor(idempotency.NewMemoryStore())))
			cl, err := Standard(WithPipeline(append([]standard.Option{
				standard.WithIdempotencyKeys(unaryMethod),
				standard.WithAttemptTimeout(100 * time.Millisecond),
				standard.WithRetries(5), // slack for a loaded machine, where an attempt may time out before it reaches the server
			}, tt.opts...)...))
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, addr, cl)
			o.order(t, c, 4, 1, true)
			o.order(t, c, 6, 3, false)
		})
	}
}

// The wrong order of the same interceptors, idempotency outermost: a call
// shed or throttled inside it did not run, its key is released, and the
// client's retry with the same key runs the order once.
func TestOurClientAgainstOurServerWrongOrderGRPC(t *testing.T) {
	t.Parallel()
	o := newOrderService()
	quota := ratelimit.NewLocal(ratelimit.Quota{Name: "tenant", Limit: 3, Window: time.Second})
	addr := start(t, o.server, grpc.ChainUnaryInterceptor(
		IdempotencyServerInterceptor(idempotency.NewMemoryStore()),
		UnaryServerInterceptor(ratelimit.Enforce(quota, tenantOf)),
		ShedUnaryServerInterceptor(shed.New(shed.Fixed(1), shed.WithQueue(0, 0)))))
	cl, err := Standard(WithPipeline(standard.WithIdempotencyKeys(unaryMethod)))
	if err != nil {
		t.Fatal(err)
	}
	o.order(t, dial(t, addr, cl), 6, 3, true)
}
