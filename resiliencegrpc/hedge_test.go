package resiliencegrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/hedge"
)

// slowOdd answers odd-numbered calls slowly (until cancelled, or after
// delay) and even-numbered ones at once, echoing the request's payload
// after the replica's name.
func slowOdd(delay time.Duration, cancelled *atomic.Int32) func(context.Context, int, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		name := "fast"
		if n%2 == 1 {
			name = "slow"
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				cancelled.Add(1)
				return nil, ctx.Err()
			}
		}
		return &testgrpc.SimpleResponse{Payload: payload(name + ":" + string(req.GetPayload().GetBody())), Username: name}, nil
	}
}

func TestHedgedUnaryOnRealServer(t *testing.T) {
	var cancelled atomic.Int32
	s := &server{unary: slowOdd(10*time.Second, &cancelled)}
	b := budget.New()
	c := NewClient(resilience.Chain(hedge.New(hedge.WithDelay(20*time.Millisecond), hedge.WithBudget(b)), bulkhead.New(2)),
		WithIdempotentMethods(unaryMethod))
	conn := dialConn(t, start(t, s), c)
	const calls = 20
	var slowest time.Duration
	for i := range calls {
		// A reply with stale content: the winner's replaces it whole.
		reply := &testgrpc.SimpleResponse{Username: "stale", OauthScope: "stale"}
		start := time.Now()
		err := conn.Invoke(t.Context(), unaryMethod, &testgrpc.SimpleRequest{Payload: payload(fmt.Sprint(i))}, reply)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		slowest = max(slowest, time.Since(start))
		if got, want := string(reply.GetPayload().GetBody()), fmt.Sprintf("fast:%d", i); got != want || reply.Username != "fast" || reply.OauthScope != "" {
			t.Fatalf("call %d: reply %v, want only the fast attempt's, %q", i, reply, want)
		}
	}
	if slowest >= 5*time.Second {
		t.Fatalf("slowest call took %v: the slow attempt's latency, not the hedge's", slowest)
	}
	// The server's odd calls are slow: each was cancelled once the hedge
	// beside it won (the server notices asynchronously).
	slow := func() int32 { return int32((s.n() + 1) / 2) }
	deadline := time.Now().Add(5 * time.Second)
	for cancelled.Load() != slow() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if cancelled.Load() != slow() || s.n() <= calls {
		t.Fatalf("%d slow attempts cancelled on the server, of %d; %d calls served", cancelled.Load(), slow(), s.n())
	}
	if b.Tokens() != budget.DefaultCapacity {
		t.Fatalf("budget at %d tokens: winning hedges must be refunded", b.Tokens())
	}
}

// dialConn connects to addr through c's interceptors until the test ends.
func dialConn(t *testing.T, addr string, c *Client) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Many concurrent hedged calls, under -race: each reply is decoded into
// its attempt's own message and only the winner's reaches the caller.
func TestHedgedUnaryConcurrentNoRace(t *testing.T) {
	var cancelled atomic.Int32
	s := &server{unary: slowOdd(30*time.Millisecond, &cancelled)}
	c := NewClient(hedge.New(hedge.WithDelay(2*time.Millisecond), hedge.WithMaxHedges(2)), WithIdempotentMethods(unaryMethod))
	client := dial(t, start(t, s), c)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			resp, err := client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{Payload: payload(fmt.Sprint(i))})
			if err != nil {
				errs <- err
				return
			}
			body := string(resp.GetPayload().GetBody())
			if body != "fast:"+fmt.Sprint(i) && body != "slow:"+fmt.Sprint(i) {
				errs <- fmt.Errorf("call %d: reply %q", i, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHedgedUnaryCallerCancellation(t *testing.T) {
	var hung atomic.Int32
	s := &server{unary: func(ctx context.Context, n int, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		<-ctx.Done()
		hung.Add(1)
		return nil, ctx.Err()
	}}
	c := NewClient(hedge.New(hedge.WithDelay(10*time.Millisecond)), WithIdempotentMethods(unaryMethod))
	client := dial(t, start(t, s), c)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for s.n() < 2 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Canceled)
	deadline := time.Now().Add(5 * time.Second)
	for hung.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if hung.Load() != 2 {
		t.Fatalf("%d of the 2 attempts saw the cancellation on the server", hung.Load())
	}
}

// A stream under a hedging policy is not hedged: its next attempt starts
// only once the previous one failed.
func TestStreamNotHedged(t *testing.T) {
	var (
		inFlight, most atomic.Int32
	)
	s := &server{out: func(n int, req *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if cur <= m || most.CompareAndSwap(m, cur) {
				break
			}
		}
		if n == 1 {
			time.Sleep(100 * time.Millisecond) // slower than the hedge delay
			return status.Error(codes.Unavailable, "down")
		}
		return ss.Send(&testgrpc.StreamingOutputCallResponse{Payload: payload("ok")})
	}}
	c := NewClient(hedge.New(hedge.WithDelay(5*time.Millisecond)), WithIdempotentMethods(outMethod))
	client := dial(t, start(t, s), c)
	st, err := client.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil || string(m.GetPayload().GetBody()) != "ok" {
		t.Fatalf("got %v, %v; want the second attempt's message", m, err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want io.EOF", err)
	}
	wantCalls(t, s, 2)
	if most.Load() != 1 {
		t.Fatalf("%d stream attempts ran at once, want 1", most.Load())
	}
}
