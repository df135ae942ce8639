package resiliencegrpc

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
)

// limitedServer serves s behind a per-client rate limit of one call an
// hour.
func limitedServer(t *testing.T, s *server, opts ...ratelimit.Option) string {
	lim := ratelimit.NewKeyed(rate.Every(time.Hour), 1, opts...)
	return start(t, s,
		grpc.ChainUnaryInterceptor(UnaryServerInterceptor(lim)),
		grpc.ChainStreamInterceptor(StreamServerInterceptor(lim)))
}

// wantPushback fails the test unless trailer asks for a wait of about an
// hour, the test limit's interval.
func wantPushback(t *testing.T, trailer metadata.MD) {
	t.Helper()
	vs := trailer.Get(PushbackTrailer)
	if len(vs) != 1 {
		t.Fatalf("trailer %v: want one %s", trailer, PushbackTrailer)
	}
	ms, err := strconv.ParseInt(vs[0], 10, 64)
	if d := time.Duration(ms) * time.Millisecond; err != nil || d <= 59*time.Minute || d > time.Hour {
		t.Errorf("pushback %q, want about an hour", vs[0])
	}
}

func TestServerRateLimitUnary(t *testing.T) {
	s := &server{unary: failing(0, nil)}
	c := dial(t, limitedServer(t, s), nil)
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	var trailer metadata.MD
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	wantCode(t, err, codes.ResourceExhausted)
	wantPushback(t, trailer)
	wantCalls(t, s, 1)
}

func TestServerRateLimitStream(t *testing.T) {
	s := &server{out: func(int, *testgrpc.StreamingOutputCallRequest, outStream) error { return nil }}
	c := dial(t, limitedServer(t, s), nil)
	for i, want := range []codes.Code{codes.OK, codes.ResourceExhausted} {
		stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = recvAll(stream.Recv)
		wantCode(t, err, want)
		if i == 1 {
			wantPushback(t, stream.Trailer())
		}
	}
	wantCalls(t, s, 1)
}

// A resiliencegrpc client honours the server's pushback, capped by its retry
// policy's maximum delay.
func TestServerPushbackReachesClient(t *testing.T) {
	s := &server{unary: failing(0, nil)}
	var (
		mu     sync.Mutex
		events []retry.Event
	)
	p := retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(time.Millisecond, 3*time.Millisecond),
		retry.WithOnRetry(func(_ context.Context, e retry.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}))
	c := dial(t, limitedServer(t, s), NewClient(p, WithIdempotentMethods(unaryMethod)))
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.ResourceExhausted)
	if !errors.Is(err, retry.ErrExhausted) {
		t.Errorf("error %v: want the retries exhausted", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || !events[0].Pushback || events[0].Wait != 3*time.Millisecond {
		t.Errorf("retries scheduled: %+v; want one, on the server's pushback capped at 3ms", events)
	}
	wantCalls(t, s, 1)
}

func TestServerRateLimitKeys(t *testing.T) {
	const tenant = "x-tenant"
	byTenant := ratelimit.WithKey(func(ctx context.Context) string {
		if vs := metadata.ValueFromIncomingContext(ctx, tenant); len(vs) > 0 && len(vs[0]) <= 64 {
			return "tenant:" + vs[0]
		}
		c, _ := resilience.CallFrom(ctx)
		return c.Target
	})
	s := &server{unary: failing(0, nil)}
	c := dial(t, limitedServer(t, s, byTenant), nil)
	call := func(name string) error {
		ctx := t.Context()
		if name != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, tenant, name)
		}
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}
	for _, tt := range []struct {
		tenant string
		want   codes.Code
	}{
		{"a", codes.OK},
		{"a", codes.ResourceExhausted},
		{"b", codes.OK},
		{"", codes.OK}, // keyed by the client's address
		{"", codes.ResourceExhausted},
		{"b", codes.ResourceExhausted},
	} {
		wantCode(t, call(tt.tenant), tt.want)
	}
}

func TestServerCallDescription(t *testing.T) {
	var got resilience.Call
	record := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		got, _ = resilience.CallFrom(ctx)
		return op(ctx)
	})
	s := &server{unary: failing(0, nil)}
	c := dial(t, start(t, s, grpc.ChainUnaryInterceptor(UnaryServerInterceptor(record))), nil)
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if want := (resilience.Call{Target: "127.0.0.1", Method: unaryMethod}); got != want {
		t.Errorf("call %+v, want %+v", got, want)
	}
}

func TestServerHandlerErrorsUnchanged(t *testing.T) {
	s := &server{unary: failing(1, errUnavailable)}
	lim := ratelimit.NewKeyed(rate.Inf, 1)
	c := dial(t, start(t, s, grpc.ChainUnaryInterceptor(UnaryServerInterceptor(lim))), nil)
	var trailer metadata.MD
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	wantCode(t, err, codes.Unavailable)
	if len(trailer.Get(PushbackTrailer)) != 0 {
		t.Errorf("trailer %v: pushback on the handler's own error", trailer)
	}
}

func TestPushbackTrailer(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want []string
	}{
		{errors.New("x"), nil},
		{resilience.MarkRetryAfter(errors.New("x"), resilience.KindThrottled, 0), []string{"0"}},
		{resilience.MarkRetryAfter(errors.New("x"), resilience.KindThrottled, 1500*time.Microsecond), []string{"2"}},
		{resilience.MarkRetryAfter(errors.New("x"), resilience.KindThrottled, 1<<62), []string{"86400000"}},
	} {
		got := pushbackTrailer(tt.err)[PushbackTrailer]
		if len(got) != len(tt.want) || len(got) == 1 && got[0] != tt.want[0] {
			t.Errorf("pushbackTrailer(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
