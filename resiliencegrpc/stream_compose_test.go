package resiliencegrpc

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	pushbackgate "github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/timeout"
)

// dialTestService connects to addr with opts (and plain credentials) until the
// test ends.
func dialTestService(t testing.TB, addr string, opts ...grpc.DialOption) testgrpc.TestServiceClient {
	t.Helper()
	return testgrpc.NewTestServiceClient(dialWith(t, addr, opts...))
}

// setup is one way of making the same calls: plain gRPC, grpc-go's own
// retry, or this package's interceptors.
type setup struct {
	name  string
	retry bool // the setup retries an idempotent stream
	opts  func() []grpc.DialOption
}

// setups returns the ways the composition tests make their calls. ours
// builds a fresh client of this package for each connection; chained, it
// runs inside another client of the package, whose policy does not retry.
func setups(ours func() *Client) []setup {
	interceptors := func(cs ...*Client) []grpc.DialOption {
		var ints []grpc.StreamClientInterceptor
		for _, c := range cs {
			ints = append(ints, c.StreamInterceptor())
		}
		return []grpc.DialOption{grpc.WithChainStreamInterceptor(ints...), grpc.WithDisableRetry()}
	}
	return []setup{
		{"plain gRPC", false, func() []grpc.DialOption { return []grpc.DialOption{grpc.WithDisableRetry()} }},
		{"gRPC retry", true, func() []grpc.DialOption { return []grpc.DialOption{grpc.WithDefaultServiceConfig(grpcRetryConfig)} }},
		{"interceptor", true, func() []grpc.DialOption { return interceptors(ours()) }},
		{"two interceptors chained", true, func() []grpc.DialOption {
			return interceptors(NewClient(timeout.New(time.Minute), WithIdempotentMethods(allMethods)), ours())
		}},
	}
}

// Two of this package's stream interceptors chained retry as one does: the
// outer one does not take the end of the inner one's first attempt for the
// end of the stream (issue 19, item 3).
func TestStreamInterceptorsChained(t *testing.T) {
	for _, st := range setups(func() *Client { return NewClient(fastRetry(), WithIdempotentMethods(outMethod)) }) {
		t.Run(st.name, func(t *testing.T) {
			s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
				if n == 1 {
					return errUnavailable
				}
				return sendAll(ss, "a")
			}}
			c := dialTestService(t, start(t, s), st.opts()...)
			stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvAll(stream.Recv)
			if !st.retry {
				wantCode(t, err, codes.Unavailable)
				wantCalls(t, s, 1)
				return
			}
			if err != nil || len(got) != 1 {
				t.Fatalf("received %q, %v; want \"a\" from the second attempt", got, err)
			}
			wantCalls(t, s, 2)
		})
	}
}

// A grpc.OnFinish given to a stream runs once, when the stream ends, not
// once per attempt: as with grpc-go's own retry.
func TestStreamOnFinishOnce(t *testing.T) {
	for _, st := range setups(func() *Client { return NewClient(fastRetry(), WithIdempotentMethods(outMethod)) }) {
		t.Run(st.name, func(t *testing.T) {
			s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
				if n == 1 {
					return errUnavailable
				}
				return sendAll(ss, "a")
			}}
			c := dialTestService(t, start(t, s), st.opts()...)
			finished := make(chan error, 10)
			stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{},
				grpc.OnFinish(func(err error) { finished <- err }))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := recvAll(stream.Recv); (err == nil) != st.retry {
				t.Fatalf("the stream ended with %v", err)
			}
			if got := len(finished); got != 1 {
				t.Fatalf("OnFinish ran %d times, want once", got)
			}
			if err := <-finished; (err == nil) != st.retry {
				t.Errorf("OnFinish saw %v", err)
			}
		})
	}
}

// ClientStream.Context commits the stream, as grpc-go's does, and returns a
// context that lives as long as the stream (issue 19, item 4): it is never
// done while the stream still delivers messages.
func TestStreamContextLivesAsLongAsStream(t *testing.T) {
	for _, st := range setups(func() *Client { return NewClient(fastRetry(), WithIdempotentMethods(outMethod)) }) {
		t.Run(st.name, func(t *testing.T) {
			release := make(chan struct{})
			s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
				if n == 1 {
					<-release // until the caller holds the stream's context
					return errUnavailable
				}
				return sendAll(ss, "a", "b")
			}}
			c := dialTestService(t, start(t, s), st.opts()...)
			stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := stream.Context()
			close(release)
			for {
				_, err := stream.Recv()
				if err != nil {
					// As with grpc-go: the context commits the first
					// attempt, whose failure is the stream's.
					wantCode(t, err, codes.Unavailable)
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("the stream delivered a message, but its context is done: %v", ctx.Err())
				}
			}
			wantCalls(t, s, 1)
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the stream ended, its context is not done")
			}
		})
	}
}

// The context of a committed stream stays alive until the stream ends.
func TestStreamContextAfterCommit(t *testing.T) {
	for _, st := range setups(func() *Client { return NewClient(fastRetry(), WithIdempotentMethods(outMethod)) }) {
		t.Run(st.name, func(t *testing.T) {
			proceed := make(chan struct{})
			s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
				if n == 1 {
					return errUnavailable
				}
				if err := sendAll(ss, "a"); err != nil {
					return err
				}
				<-proceed
				return sendAll(ss, "b")
			}}
			c := dialTestService(t, start(t, s), st.opts()...)
			stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			first, err := stream.Recv()
			if !st.retry {
				wantCode(t, err, codes.Unavailable)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx := stream.Context()
			close(proceed)
			second, err := stream.Recv()
			if err != nil || ctx.Err() != nil {
				t.Fatalf("second message: %v; context: %v; want a message and a live context", err, ctx.Err())
			}
			if _, err := stream.Recv(); err != io.EOF {
				t.Fatalf("Recv: %v, want io.EOF", err)
			}
			if b := string(first.Payload.Body) + string(second.Payload.Body); b != "ab" {
				t.Errorf("received %q, want \"ab\"", b)
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the stream ended, its context is not done")
			}
		})
	}
}

// A stream that a half-open breaker lets through as its probe gives its
// verdict when it commits, not when it ends: a long-lived stream to a host
// that answers does not keep the breaker half-open, turning every other
// call away, for as long as it lives (issue 18, item 8).
func TestStreamProbeVerdictAtCommit(t *testing.T) {
	for _, withBreaker := range []bool{false, true} {
		name := map[bool]string{false: "plain gRPC", true: "breaker"}[withBreaker]
		t.Run(name, func(t *testing.T) {
			s := &server{
				unary: func(_ context.Context, n int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
					if n == 1 {
						return nil, errUnavailable // opens the breaker
					}
					return &testgrpc.SimpleResponse{}, nil
				},
				out: func(_ int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
					if err := sendAll(ss, "a"); err != nil {
						return err
					}
					<-ss.Context().Done() // a watch: lives until the caller ends it
					return ss.Context().Err()
				},
			}
			b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(20*time.Millisecond))
			var c testgrpc.TestServiceClient
			if withBreaker {
				c = dial(t, start(t, s), NewClient(b))
			} else {
				c = dial(t, start(t, s), nil)
			}
			_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
			wantCode(t, err, codes.Unavailable)
			if withBreaker {
				// Wait for the open duration to pass: no upper bound on
				// how long it takes, only on how long the test waits.
				deadline := time.Now().Add(10 * time.Second)
				for b.State() != breaker.HalfOpen {
					if time.Now().After(deadline) {
						t.Fatalf("breaker %v, want half-open", b.State())
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			// The stream committed and lives on; the host answers.
			refused := 0
			for range 50 {
				if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
					refused++
				}
			}
			if refused > 0 {
				t.Errorf("%d of 50 calls failed while the probe stream lived (breaker %v), want none", refused, b.State())
			}
			cancel()
		})
	}
}

// A pushback trailer at the end of a stream that committed reaches the
// pushback gate, as a unary call's does: the next call to the host that
// cannot wait for the pause is turned away without reaching it.
//
// The adapter reports the pause when the stream ends
// (TestStreamPushbackAtEndReported); the gate reads it again when the held
// result of a call whose outcome comes at its end
// (resilience.Call.OutcomeAtEnd) ends.
func TestStreamPushbackAtEndClosesGate(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
				if n > 1 {
					return sendAll(ss, "b")
				}
				if err := sendAll(ss, "a"); err != nil {
					return err
				}
				ss.SetTrailer(metadata.MD{PushbackTrailer: {"60000"}})
				return status.Error(code, "slow down")
			}}
			gate := pushbackgate.New(pushbackgate.WithMaxPushback(time.Minute))
			c := dial(t, start(t, s), NewClient(gate, WithIdempotentMethods(outMethod)))
			stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvAll(stream.Recv)
			wantCode(t, err, code)
			if len(got) != 1 {
				t.Fatalf("received %q, want one message", got)
			}
			short, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err = c.StreamingOutputCall(short, &testgrpc.StreamingOutputCallRequest{})
			if !errors.Is(err, pushbackgate.ErrClosed) {
				t.Errorf("next stream: %v, want a match for pushback.ErrClosed", err)
			}
			wantCalls(t, s, 1)
		})
	}
}

// The adapter's half of a committed stream's pushback: when the stream
// ends, the policies that wait for its end read the server's pause as one
// the dependency reported (resilience.ReportedPushback).
func TestStreamPushbackAtEndReported(t *testing.T) {
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if err := sendAll(ss, "a"); err != nil {
			return err
		}
		ss.SetTrailer(metadata.MD{PushbackTrailer: {"1500"}})
		return errUnavailable
	}}
	type seen struct {
		d  time.Duration
		ok bool
	}
	ends := make(chan seen, 1)
	p := resilience.PolicyFunc(func(ctx context.Context, op func(context.Context) error) error {
		err := op(ctx)
		// At the end of the held result, at once if it has ended already
		// (when the header came with the end, op fails).
		resilience.Defer(ctx, func(error) {
			var v seen
			v.d, v.ok = resilience.ReportedPushback(ctx)
			ends <- v
		})
		return err
	})
	c := dial(t, start(t, s), NewClient(p))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = recvAll(stream.Recv)
	wantCode(t, err, codes.Unavailable)
	var v seen
	select {
	case v = <-ends:
	case <-time.After(10 * time.Second):
		t.Fatal("the policy's release did not run")
	}
	if want := 1500 * time.Millisecond; !v.ok || v.d != want {
		t.Errorf("at the end: ReportedPushback %v, %v; want %v", v.d, v.ok, want)
	}
}

// A client-streaming upload that lasts longer than the per-attempt timeout
// succeeds, as it does with plain gRPC under the same overall deadline: the
// attempt timeout bounds the server's time to answer once the client has
// finished sending, not the client's own sending (issue 19, item 5). Real
// time, with wide margins: the upload lasts five times the attempt timeout.
func TestClientStreamUploadLongerThanAttemptTimeout(t *testing.T) {
	const attempt = 50 * time.Millisecond
	ours := func() *Client {
		return NewClient(resilience.Chain(timeout.New(time.Minute), fastRetry(), timeout.New(attempt)), WithIdempotentMethods(inMethod))
	}
	for _, st := range setups(ours) {
		t.Run(st.name, func(t *testing.T) {
			s := &server{in: func(n int, ss inStream) error {
				size := 0
				for {
					m, err := ss.Recv()
					if err == io.EOF {
						return ss.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(size)})
					}
					if err != nil {
						return err
					}
					size += len(m.Payload.Body)
				}
			}}
			c := dialTestService(t, start(t, s), st.opts()...)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			stream, err := c.StreamingInputCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				if err := stream.Send(&testgrpc.StreamingInputCallRequest{Payload: payload("12345")}); err != nil {
					t.Fatalf("Send: %v", err)
				}
				time.Sleep(attempt)
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				t.Fatalf("CloseAndRecv: %v", err)
			}
			if resp.AggregatedPayloadSize != 25 {
				t.Errorf("aggregated size %d, want 25", resp.AggregatedPayloadSize)
			}
			wantCalls(t, s, 1)
		})
	}
}

// Once the client has finished sending, the attempt timeout bounds the
// server's time to answer: each attempt that gets no answer is cut off
// and retried, with the messages replayed.
func TestClientStreamAttemptTimeoutAfterCloseSend(t *testing.T) {
	const attempt = 50 * time.Millisecond
	s := &server{in: func(n int, ss inStream) error {
		for {
			if _, err := ss.Recv(); err != nil {
				break
			}
		}
		<-ss.Context().Done() // never answers
		return ss.Context().Err()
	}}
	p := resilience.Chain(timeout.New(time.Minute), fastRetry(), timeout.New(attempt))
	c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(inMethod)))
	stream, err := c.StreamingInputCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := stream.Send(&testgrpc.StreamingInputCallRequest{Payload: payload("12345")}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		time.Sleep(2 * attempt)
	}
	_, err = stream.CloseAndRecv()
	wantCode(t, err, codes.DeadlineExceeded)
	if !errors.Is(err, timeout.ErrTimeout) {
		t.Errorf("error %v does not match timeout.ErrTimeout", err)
	}
	wantCalls(t, s, 4)
}
