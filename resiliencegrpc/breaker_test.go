package resiliencegrpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

// hanging answers only when the call's context ends.
func hanging() *server {
	return &server{unary: func(ctx context.Context, _ int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
}

// The caller's own deadline or cancellation never counts against the
// dependency; an attempt timeout inside the breaker does.
func TestCallerDeadlineNeverOpensBreaker(t *testing.T) {
	const short = 20 * time.Millisecond
	for _, tt := range []struct {
		name     string
		policies func(b *breaker.Breaker) []resilience.Policy
		ctx      func() (context.Context, context.CancelFunc)
		code     codes.Code
		want     breaker.State
	}{
		{"caller's deadline", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{b, timeout.New(time.Minute)}
		}, func() (context.Context, context.CancelFunc) { return context.WithTimeout(t.Context(), short) }, codes.DeadlineExceeded, breaker.Closed},
		{"caller cancels", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{b, timeout.New(time.Minute)}
		}, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(short, cancel)
			return ctx, cancel
		}, codes.Canceled, breaker.Closed},
		{"total timeout outside the breaker", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{timeout.New(short), b, timeout.New(time.Minute)}
		}, func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) }, codes.DeadlineExceeded, breaker.Closed},
		{"attempt timeout inside the breaker", func(b *breaker.Breaker) []resilience.Policy {
			return []resilience.Policy{b, timeout.New(short)}
		}, func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) }, codes.DeadlineExceeded, breaker.Open},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := breaker.New(breaker.WithConsecutiveFailures(1))
			c := dial(t, start(t, hanging()), NewClient(resilience.Chain(tt.policies(b)...)))
			ctx, cancel := tt.ctx()
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			cancel()
			wantCode(t, err, tt.code)
			if got := b.State(); got != tt.want {
				t.Fatalf("state %v, want %v", got, tt.want)
			}
		})
	}
}

// Through the Standard pipeline, an open breaker fails the call at once:
// the retry does not wait for the next probe, and the caller gets
// Unavailable, still matching breaker.ErrOpen.
func TestStandardOpenBreakerFailsFast(t *testing.T) {
	s := &server{unary: func(context.Context, int, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		return nil, errUnavailable
	}}
	const open = 10 * time.Second
	p, err := standard.New(standard.WithBreaker(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(open)))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(unaryMethod)))
	for i := range 2 {
		began := time.Now()
		_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
		took := time.Since(began)
		wantCode(t, err, codes.Unavailable)
		if !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("call %d: error %v does not match breaker.ErrOpen", i+1, err)
		}
		if took >= open/2 {
			t.Fatalf("call %d took %v: it waited for the probe, due %v after the opening", i+1, took, open)
		}
	}
	// The first call's first attempt opened the breaker; its retry and
	// the second call were refused without reaching the server.
	wantCalls(t, s, 1)

	// resiliencegrpc.Standard as it is, without idempotent methods.
	c2, err := Standard(WithPipeline(standard.WithBreaker(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(open))))
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, start(t, s), c2)
	_, err = conn.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	_, err = conn.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("Standard: second call: %v, want breaker.ErrOpen", err)
	}
	wantCode(t, err, codes.Unavailable)
}

// A stream's outcome is counted at its end (resilience.Call.OutcomeAtEnd):
// a stream the caller cancels halfway is not counted, one whose deadline
// passes neither; one the server fails is.
func TestStreamCallerCancelNeverOpensBreaker(t *testing.T) {
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if err := sendAll(ss, "a"); err != nil {
			return err
		}
		if n == 3 {
			return errUnavailable
		}
		<-ss.Context().Done()
		return ss.Context().Err()
	}}
	b := breaker.New(breaker.WithConsecutiveFailures(1))
	c := dial(t, start(t, s), NewClient(b))
	for i, ctx := range []func() (context.Context, context.CancelFunc){
		func() (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) },
		func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(t.Context(), 50*time.Millisecond)
		},
	} {
		ctx, cancel := ctx()
		stream, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("stream %d: first message: %v", i+1, err)
		}
		if i == 0 {
			cancel()
		}
		_, err = recvAll(stream.Recv)
		cancel()
		if err == nil {
			t.Fatalf("stream %d ended cleanly, want the caller's error", i+1)
		}
		if got := b.State(); got != breaker.Closed {
			t.Fatalf("stream %d ended by the caller (%v): state %v, want closed", i+1, err, got)
		}
	}
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = recvAll(stream.Recv)
	wantCode(t, err, codes.Unavailable)
	if got := b.State(); got != breaker.Open {
		t.Fatalf("stream failed by the server: state %v, want open", got)
	}
}
