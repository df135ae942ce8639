package resiliencegrpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

// failing returns a unary handler that fails the first n calls with err
// and then succeeds.
func failing(n int, err error) func(context.Context, int, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return func(_ context.Context, call int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		if call <= n {
			return nil, err
		}
		return &testgrpc.SimpleResponse{Username: "ok"}, nil
	}
}

func TestUnaryRetriesUnavailable(t *testing.T) {
	s := &server{unary: failing(2, errUnavailable)}
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(unaryMethod)))
	resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Username != "ok" {
		t.Errorf("response %v, want the third attempt's", resp)
	}
	wantCalls(t, s, 3)
}

func TestUnaryNotRetried(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"InvalidArgument", status.Error(codes.InvalidArgument, "bad"), codes.InvalidArgument},
		{"NotFound", status.Error(codes.NotFound, "no"), codes.NotFound},
		{"Internal", status.Error(codes.Internal, "bug"), codes.Internal},
		{"ResourceExhausted without pushback", status.Error(codes.ResourceExhausted, "quota"), codes.ResourceExhausted},
		{"server's Canceled", status.Error(codes.Canceled, "upstream canceled"), codes.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{unary: failing(1, tt.err)}
			c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(unaryMethod)))
			_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
			wantCode(t, err, tt.want)
			if got, want := status.Convert(err).Message(), status.Convert(tt.err).Message(); got != want {
				t.Errorf("message %q, want the server's %q", got, want)
			}
			wantCalls(t, s, 1)
		})
	}
}

func TestUnaryRetryExhausted(t *testing.T) {
	s := &server{unary: failing(100, errUnavailable)}
	c := dial(t, start(t, s), NewClient(fastRetry(retry.WithMaxAttempts(3)), WithIdempotentMethods(unaryMethod)))
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	if got := status.Convert(err).Message(); got != "down" {
		t.Errorf("status message %q, want the server's %q", got, "down")
	}
	var re *retry.Error
	if !errors.As(err, &re) || re.Attempts != 3 || !errors.Is(err, retry.ErrExhausted) {
		t.Errorf("error %v: want a *retry.Error after 3 attempts, matching retry.ErrExhausted", err)
	}
	wantCalls(t, s, 3)
}

func TestUnaryIdempotency(t *testing.T) {
	withKey := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, IdempotencyKey, "k-1")
	}
	tests := []struct {
		name  string
		opts  []Option
		ctx   func(context.Context) context.Context
		calls int
	}{
		{"not declared", nil, nil, 1},
		{"other method declared", []Option{WithIdempotentMethods("/grpc.testing.TestService/EmptyCall")}, nil, 1},
		{"method declared", []Option{WithIdempotentMethods(unaryMethod)}, nil, 2},
		{"service declared", []Option{WithIdempotentMethods(allMethods)}, nil, 2},
		{"predicate", []Option{WithIdempotentIf(func(_ context.Context, m string) bool { return m == unaryMethod })}, nil, 2},
		{"predicate says no", []Option{WithIdempotentIf(func(context.Context, string) bool { return false })}, nil, 1},
		{"idempotency key", nil, withKey, 2},
		{"empty idempotency key", nil, func(ctx context.Context) context.Context {
			return metadata.AppendToOutgoingContext(ctx, IdempotencyKey, "")
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{unary: failing(1, errUnavailable)}
			c := dial(t, start(t, s), NewClient(fastRetry(), tt.opts...))
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			if tt.calls == 1 {
				wantCode(t, err, codes.Unavailable)
			} else if err != nil {
				t.Fatal(err)
			}
			wantCalls(t, s, tt.calls)
		})
	}
}

func TestUnaryPushback(t *testing.T) {
	tests := []struct {
		name     string
		code     codes.Code
		values   []string
		maxDelay time.Duration
		retried  bool
		wait     time.Duration // the wait scheduled, when retried
	}{
		{"Unavailable", codes.Unavailable, []string{"3"}, time.Second, true, 3 * time.Millisecond},
		{"ResourceExhausted", codes.ResourceExhausted, []string{"4"}, time.Second, true, 4 * time.Millisecond},
		{"zero", codes.Unavailable, []string{"0"}, time.Second, true, 0},
		{"capped", codes.Unavailable, []string{"3600000"}, 7 * time.Millisecond, true, 7 * time.Millisecond},
		{"negative", codes.Unavailable, []string{"-1"}, time.Second, false, 0},
		{"malformed", codes.Unavailable, []string{"3ms"}, time.Second, false, 0},
		{"two values", codes.Unavailable, []string{"1", "2"}, time.Second, false, 0},
		{"negative, ResourceExhausted", codes.ResourceExhausted, []string{"-5"}, time.Second, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{unary: func(ctx context.Context, n int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
				if n > 1 {
					return &testgrpc.SimpleResponse{}, nil
				}
				grpc.SetTrailer(ctx, metadata.MD{PushbackTrailer: tt.values})
				return nil, status.Error(tt.code, "go away")
			}}
			var (
				mu     sync.Mutex
				events []retry.Event
			)
			p := retry.New(retry.WithBackoff(time.Millisecond, tt.maxDelay), retry.WithOnRetry(func(_ context.Context, e retry.Event) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}))
			c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(unaryMethod)))
			_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
			mu.Lock()
			defer mu.Unlock()
			if !tt.retried {
				wantCode(t, err, tt.code)
				wantCalls(t, s, 1)
				if len(events) != 0 {
					t.Errorf("retries scheduled: %+v, want none", events)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantCalls(t, s, 2)
			if len(events) != 1 || !events[0].Pushback || events[0].Wait != tt.wait {
				t.Errorf("retries scheduled: %+v, want one with pushback, waiting %v", events, tt.wait)
			}
		})
	}
}

func TestUnaryBreakerFailsFast(t *testing.T) {
	s := &server{unary: failing(100, errUnavailable)}
	b := breaker.New(breaker.WithConsecutiveFailures(2), breaker.WithOpenDuration(time.Hour))
	c := dial(t, start(t, s), NewClient(b, WithIdempotentMethods(unaryMethod)))
	for range 2 {
		_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
		wantCode(t, err, codes.Unavailable)
	}
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	if !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("error %v does not match breaker.ErrOpen", err)
	}
	wantCalls(t, s, 2)
}

func TestUnaryCallerCancellation(t *testing.T) {
	started := make(chan struct{})
	s := &server{unary: func(ctx context.Context, _ int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}}
	b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Hour))
	c := dial(t, start(t, s), NewClient(resilience.Chain(fastRetry(), b), WithIdempotentMethods(unaryMethod)))

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Canceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not match context.Canceled", err)
	}
	wantCalls(t, s, 1)
	if got := b.State(); got != breaker.Closed {
		t.Errorf("breaker %v after the caller canceled, want closed", got)
	}
}

func TestUnaryAttemptTimeout(t *testing.T) {
	// The first attempt hangs until the client gives up on it.
	s := &server{unary: func(ctx context.Context, n int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		if n == 1 {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return &testgrpc.SimpleResponse{}, nil
	}}
	p := resilience.Chain(fastRetry(), timeout.New(50*time.Millisecond))
	c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(unaryMethod)))
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, s, 2)
}

func TestUnaryTotalTimeout(t *testing.T) {
	s := &server{unary: func(ctx context.Context, _ int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}}
	p := resilience.Chain(timeout.New(50*time.Millisecond), fastRetry())
	c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(unaryMethod)))
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	// The deadline went to the server too, which may end the call first:
	// the code is what the caller can rely on. TestToStatus checks that an
	// error from the timeout's own timer matches timeout.ErrTimeout.
	wantCode(t, err, codes.DeadlineExceeded)
}

func TestUnaryCallDescription(t *testing.T) {
	s := &server{unary: failing(0, nil)}
	addr := start(t, s)
	var got resilience.Call
	record := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		got, _ = resilience.CallFrom(ctx)
		return op(ctx)
	})
	c := dial(t, "dns:///"+addr, NewClient(record, WithIdempotentMethods(unaryMethod)))
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	want := resilience.Call{Target: addr, Method: unaryMethod, Idempotent: true}
	if got != want {
		t.Errorf("call %+v, want %+v", got, want)
	}
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}, grpc.CallAuthority("api.example")); err != nil {
		t.Fatal(err)
	}
	if got.Target != "api.example" {
		t.Errorf("target %q with grpc.CallAuthority, want %q", got.Target, "api.example")
	}
}

func TestNoPolicy(t *testing.T) {
	s := &server{unary: failing(1, errUnavailable)}
	c := dial(t, start(t, s), NewClient(nil, WithIdempotentMethods(unaryMethod)))
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	wantCalls(t, s, 1)
}

func TestClassify(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	alive := context.Background()
	pb := func(v ...string) metadata.MD { return metadata.MD{PushbackTrailer: v} }

	tests := []struct {
		ctx     context.Context
		err     error
		trailer metadata.MD
		kind    resilience.Kind
		after   time.Duration // -1: none
	}{
		{alive, nil, nil, resilience.KindSuccess, -1},
		{alive, status.Error(codes.Unavailable, ""), nil, resilience.KindTransient, -1},
		{alive, status.Error(codes.Unavailable, ""), pb("250"), resilience.KindTransient, 250 * time.Millisecond},
		{alive, status.Error(codes.Unavailable, ""), pb("-1"), resilience.KindPermanent, -1},
		{alive, status.Error(codes.ResourceExhausted, ""), nil, resilience.KindRejected, -1},
		{alive, status.Error(codes.ResourceExhausted, ""), pb("10"), resilience.KindThrottled, 10 * time.Millisecond},
		{alive, status.Error(codes.ResourceExhausted, ""), pb("x"), resilience.KindRejected, -1},
		{alive, status.Error(codes.DeadlineExceeded, ""), nil, resilience.KindTransient, -1},
		{expired, status.Error(codes.DeadlineExceeded, ""), nil, resilience.KindCanceled, -1}, // the caller's own deadline
		{expired, status.Error(codes.Unavailable, ""), nil, resilience.KindCanceled, -1},
		{canceled, status.Error(codes.Canceled, ""), nil, resilience.KindCanceled, -1},
		{canceled, status.Error(codes.Unavailable, ""), nil, resilience.KindCanceled, -1},
		{alive, status.Error(codes.Canceled, ""), nil, resilience.KindRejected, -1},
		{alive, status.Error(codes.Internal, ""), nil, resilience.KindPermanent, -1},
		{alive, status.Error(codes.Unknown, ""), nil, resilience.KindPermanent, -1},
		{alive, status.Error(codes.DataLoss, ""), nil, resilience.KindPermanent, -1},
		{alive, status.Error(codes.InvalidArgument, ""), nil, resilience.KindRejected, -1},
		{alive, status.Error(codes.Unimplemented, ""), nil, resilience.KindRejected, -1},
		{alive, status.Error(codes.PermissionDenied, ""), nil, resilience.KindRejected, -1},
		{alive, errors.New("not from gRPC"), nil, resilience.KindTransient, -1},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%v/%v/%v", status.Code(tt.err), tt.trailer[PushbackTrailer], tt.ctx.Err())
		err := classify(tt.ctx, tt.err, tt.trailer)
		if got := resilience.Classify(err); got != tt.kind {
			t.Errorf("%s: kind %v, want %v", name, got, tt.kind)
		}
		after, ok := resilience.RetryAfter(err)
		if !ok {
			after = -1
		}
		if after != tt.after {
			t.Errorf("%s: retry after %v, want %v", name, after, tt.after)
		}
		if tt.err != nil && status.Code(err) != status.Code(tt.err) {
			t.Errorf("%s: marked error has code %v", name, status.Code(err))
		}
	}
}

func TestPushbackParse(t *testing.T) {
	tests := []struct {
		values   []string
		d        time.Duration
		ok, stop bool
	}{
		{nil, 0, false, false},
		{[]string{"0"}, 0, true, false},
		{[]string{"1500"}, 1500 * time.Millisecond, true, false},
		{[]string{"86400000"}, 24 * time.Hour, true, false},
		{[]string{"86400001"}, maxPushback, true, false},
		{[]string{strings.Repeat("9", 40)}, maxPushback, true, false},
		{[]string{"-0"}, 0, true, false},
		{[]string{"-1"}, 0, false, true},
		{[]string{"-"}, 0, false, true},
		{[]string{""}, 0, false, true},
		{[]string{"+5"}, 0, false, true},
		{[]string{" 5"}, 0, false, true},
		{[]string{"5.0"}, 0, false, true},
		{[]string{"1", "1"}, 0, false, true},
		{[]string{"0000000001"}, time.Millisecond, true, false},
		{[]string{"000"}, 0, true, false},
		{[]string{"-000"}, 0, true, false},
	}
	for _, tt := range tests {
		d, ok, stop := pushback(metadata.MD{PushbackTrailer: tt.values})
		if d != tt.d || ok != tt.ok || stop != tt.stop {
			t.Errorf("pushback(%q) = %v, %v, %v; want %v, %v, %v", tt.values, d, ok, stop, tt.d, tt.ok, tt.stop)
		}
	}
}

func FuzzPushback(f *testing.F) {
	for _, s := range []string{"0", "1500", "-1", "-0", "", "0000000001", strings.Repeat("9", 12)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok, stop := pushback(metadata.MD{PushbackTrailer: {s}})
		if d < 0 || d > maxPushback || ok && stop || !ok && d != 0 {
			t.Fatalf("pushback(%q) = %v, %v, %v: out of range", s, d, ok, stop)
		}
		// Leading zeros never change a value.
		if ok && s != "" && isDigits(s) {
			d2, ok2, stop2 := pushback(metadata.MD{PushbackTrailer: {"0000000000" + s}})
			if d2 != d || ok2 != ok || stop2 != stop {
				t.Fatalf("pushback(%q) = %v, %v, %v; with leading zeros %v, %v, %v", s, d, ok, stop, d2, ok2, stop2)
			}
		}
	})
}

func TestToStatus(t *testing.T) {
	raw := status.Error(codes.Unavailable, "down")
	rawDeadline := status.Error(codes.DeadlineExceeded, "slow")
	tests := []struct {
		name  string
		err   error
		code  codes.Code
		msg   string  // the status message, "" for any
		is    []error // errors.Is must match each
		isRaw bool    // the attempt's own error is returned
	}{
		{"marked attempt error", resilience.Mark(raw, resilience.KindTransient), codes.Unavailable, "down", nil, true},
		{"retries exhausted", &retry.Error{Attempts: 3, Reason: retry.ErrExhausted, Err: resilience.Mark(raw, resilience.KindTransient)},
			codes.Unavailable, "down", []error{retry.ErrExhausted}, false},
		{"policy timeout", &timeout.Error{After: time.Second, Err: resilience.Mark(rawDeadline, resilience.KindTransient)},
			codes.DeadlineExceeded, "slow", []error{timeout.ErrTimeout, context.DeadlineExceeded}, false},
		{"policy timeout over another code", &timeout.Error{After: time.Second, Err: raw},
			codes.DeadlineExceeded, "", []error{timeout.ErrTimeout}, false},
		{"breaker open", resilience.Mark(&breaker.OpenError{Name: "b"}, resilience.KindThrottled), codes.Unavailable, "", []error{breaker.ErrOpen}, false},
		{"bulkhead full", resilience.Mark(bulkhead.ErrFull, resilience.KindThrottled), codes.Unavailable, "", []error{bulkhead.ErrFull}, false},
		{"adaptive limit", resilience.Mark(resilience.Mark(&adaptive.LimitError{Target: "t", Limit: 4, Reason: adaptive.ReasonLimit}, resilience.KindThrottled), resilience.KindRefused),
			codes.Unavailable, "", []error{adaptive.ErrLimited}, false},
		{"rate limited", &ratelimit.LimitedError{Wait: time.Second}, codes.ResourceExhausted, "", []error{ratelimit.ErrLimited}, false},
		{"caller canceled", context.Canceled, codes.Canceled, "context canceled", []error{context.Canceled}, false},
		{"caller's deadline", context.DeadlineExceeded, codes.DeadlineExceeded, "", []error{context.DeadlineExceeded}, false},
		{"other", errors.New("boom"), codes.Unknown, "boom", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := toStatus(tt.err)
			if _, ok := err.(interface{ GRPCStatus() *status.Status }); !ok {
				t.Fatalf("%T is not a status error", err)
			}
			wantCode(t, err, tt.code)
			if msg := status.Convert(err).Message(); tt.msg != "" && msg != tt.msg {
				t.Errorf("message %q, want %q", msg, tt.msg)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("error %v does not match %v", err, target)
				}
			}
			if got := err == raw; got != tt.isRaw {
				t.Errorf("returned the attempt's own error: %v, want %v", got, tt.isRaw)
			}
			if !strings.HasPrefix(err.Error(), "rpc error: code = ") && !strings.Contains(err.Error(), "rpc error: code = ") {
				t.Errorf("error text %q does not show the status", err.Error())
			}
		})
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}

func TestTarget(t *testing.T) {
	tests := []struct{ target, want string }{
		{"127.0.0.1:50051", "127.0.0.1:50051"},
		{"dns:///api.example:443", "api.example:443"},
		{"dns://8.8.8.8/api.example:443", "api.example:443"},
		{"passthrough:///10.0.0.1:80", "10.0.0.1:80"},
		{"unix:///tmp/sock", "/tmp/sock"},
		{"unix:/tmp/sock", "/tmp/sock"},
		{"unix-abstract:sock", "sock"},
		{"orders:///orders", "orders"},
		{"orders://lb.internal/orders?zone=a", "orders"},
		{"xds:///orders.prod:8443", "orders.prod:8443"},
		{"orders://orders", "orders"},
		{"[::1]:50051", "[::1]:50051"},
		{"localhost:50051", "localhost:50051"},
		{"dns:api.example:443", "api.example:443"},
	}
	for _, tt := range tests {
		cc, err := grpc.NewClient(tt.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		if got := target(cc, nil); got != tt.want {
			t.Errorf("target(%q) = %q, want %q", tt.target, got, tt.want)
		}
		cc.Close()
	}
}

func TestOptionPanics(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
		want string
	}{
		{"no slash", WithIdempotentMethods("pkg.S/M"), "resiliencegrpc: WithIdempotentMethods"},
		{"no method", WithIdempotentMethods("/pkg.S/"), "resiliencegrpc: WithIdempotentMethods"},
		{"nested", WithIdempotentMethods("/pkg.S/M/x"), "resiliencegrpc: WithIdempotentMethods"},
		{"nil predicate", WithIdempotentIf(nil), "resiliencegrpc: WithIdempotentIf"},
		{"negative buffer", WithMaxReplayBuffer(-1), "resiliencegrpc: WithMaxReplayBuffer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.HasPrefix(s, tt.want) {
					t.Errorf("panic %v, want one starting with %q", r, tt.want)
				}
			}()
			NewClient(nil, tt.opt)
		})
	}
}

func TestStandard(t *testing.T) {
	s := &server{unary: failing(1, errUnavailable)}
	c, err := Standard()
	if err != nil {
		t.Fatal(err)
	}
	client := dial(t, start(t, s), c)
	ctx := metadata.AppendToOutgoingContext(t.Context(), IdempotencyKey, "k")
	if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, s, 2)
}

// The zero Client passes every call through unchanged, as documented.
func TestZeroClient(t *testing.T) {
	s := &server{unary: failing(1, errUnavailable)}
	var zero Client
	_, err := dial(t, start(t, s), &zero).UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)
	wantCalls(t, s, 1)
}
