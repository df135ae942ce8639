package resiliencegrpc

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/timeout"
)

// sendAll sends one response per body.
func sendAll(ss outStream, bodies ...string) error {
	for _, b := range bodies {
		if err := ss.Send(&testgrpc.StreamingOutputCallResponse{Payload: payload(b)}); err != nil {
			return err
		}
	}
	return nil
}

// recvAll receives until the stream ends and returns the bodies received
// and the error that ended it (nil for io.EOF).
func recvAll[T interface{ GetPayload() *testgrpc.Payload }](recv func() (T, error)) ([]string, error) {
	var got []string
	for {
		m, err := recv()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(m.GetPayload().GetBody()))
	}
}

// recorder keeps what each call to a handler received.
type recorder struct {
	mu  sync.Mutex
	got map[int][]string
}

func (r *recorder) add(n int, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = make(map[int][]string)
	}
	r.got[n] = append(r.got[n], body)
}

func (r *recorder) call(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[n]
}

func TestServerStreamRetriedBeforeFirstMessage(t *testing.T) {
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if n == 1 {
			return errUnavailable
		}
		return sendAll(ss, "a", "b", "c")
	}}
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(outMethod)))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("received %q, want %q", got, want)
	}
	wantCalls(t, s, 2)
}

func TestServerStreamFailureAfterMessages(t *testing.T) {
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if err := sendAll(ss, "a", "b"); err != nil {
			return err
		}
		return errUnavailable
	}}
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(outMethod)))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(stream.Recv)
	wantCode(t, err, codes.Unavailable)
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("received %q, want %q, each once", got, want)
	}
	wantCalls(t, s, 1)
}

func TestServerStreamHeaderCommits(t *testing.T) {
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if err := ss.SendHeader(metadata.Pairs("attempt", "1")); err != nil {
			return err
		}
		return errUnavailable
	}}
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(outMethod)))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	md, err := stream.Header()
	if err != nil || md.Get("attempt") == nil {
		t.Errorf("Header() = %v, %v; want the server's header", md, err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable)
	wantCalls(t, s, 1)
}

func TestServerStreamHeaderWaitsForRetry(t *testing.T) {
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if n == 1 {
			return errUnavailable
		}
		return ss.SendHeader(metadata.Pairs("attempt", "2"))
	}}
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(outMethod)))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	md, err := stream.Header()
	if err != nil || !slices.Equal(md.Get("attempt"), []string{"2"}) {
		t.Errorf("Header() = %v, %v; want the second attempt's", md, err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("Recv() error %v, want io.EOF", err)
	}
}

func TestServerStreamNotIdempotent(t *testing.T) {
	s := &server{out: func(int, *testgrpc.StreamingOutputCallRequest, outStream) error { return errUnavailable }}
	c := dial(t, start(t, s), NewClient(fastRetry()))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable)
	wantCalls(t, s, 1)
}

func TestServerStreamRetriesExhausted(t *testing.T) {
	s := &server{out: func(int, *testgrpc.StreamingOutputCallRequest, outStream) error { return errUnavailable }}
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(outMethod)))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable)
	if status.Convert(err).Message() != "down" {
		t.Errorf("message %q, want the server's", status.Convert(err).Message())
	}
	wantCalls(t, s, 4)
}

// A client stream whose server reads every message and then fails, or fails
// at once, is replayed whole on the next attempt.
func TestClientStreamReplay(t *testing.T) {
	for _, early := range []bool{false, true} {
		name := map[bool]string{false: "failure after reading", true: "failure before reading"}[early]
		t.Run(name, func(t *testing.T) {
			var rec recorder
			s := &server{in: func(n int, ss inStream) error {
				if n == 1 && early {
					return errUnavailable
				}
				size := 0
				for {
					m, err := ss.Recv()
					if err == io.EOF {
						break
					}
					if err != nil {
						return err
					}
					rec.add(n, string(m.Payload.Body))
					size += len(m.Payload.Body)
				}
				if n == 1 {
					return errUnavailable
				}
				return ss.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(size)})
			}}
			c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(inMethod)))
			stream, err := c.StreamingInputCall(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			sent := []string{"one", "two", "three"}
			for _, b := range sent {
				if err := stream.Send(&testgrpc.StreamingInputCallRequest{Payload: payload(b)}); err != nil {
					t.Fatalf("Send: %v", err)
				}
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				t.Fatal(err)
			}
			if resp.AggregatedPayloadSize != 11 {
				t.Errorf("aggregated size %d, want 11", resp.AggregatedPayloadSize)
			}
			wantCalls(t, s, 2)
			if !early && !slices.Equal(rec.call(1), sent) {
				t.Errorf("first attempt received %q, want %q", rec.call(1), sent)
			}
			if !slices.Equal(rec.call(2), sent) {
				t.Errorf("second attempt received %q, want %q", rec.call(2), sent)
			}
		})
	}
}

func TestClientStreamReplayBound(t *testing.T) {
	s := &server{in: func(n int, ss inStream) error {
		for {
			if _, err := ss.Recv(); err != nil {
				break
			}
		}
		return errUnavailable
	}}
	msg := &testgrpc.StreamingInputCallRequest{Payload: payload("12345")}
	// Each message counts its size and the overhead: two fit, not three.
	bound := 2 * (ReplayOverhead + proto.Size(msg))
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(inMethod), WithMaxReplayBuffer(bound)))
	for _, tt := range []struct {
		messages int
		calls    int
	}{{2, 4}, {3, 1}} {
		s.calls.Store(0)
		stream, err := c.StreamingInputCall(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for range tt.messages {
			if err := stream.Send(msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		_, err = stream.CloseAndRecv()
		wantCode(t, err, codes.Unavailable)
		if got := errors.Is(err, ErrNotReplayable); got != (tt.calls == 1) {
			t.Errorf("%d messages: error %v matches ErrNotReplayable: %v", tt.messages, err, got)
		}
		wantCalls(t, s, tt.calls)
	}
}

func TestBidiReplay(t *testing.T) {
	var rec recorder
	s := &server{duplex: func(n int, ss duplexStream) error {
		for i := 0; ; i++ {
			m, err := ss.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			rec.add(n, string(m.Payload.Body))
			if n == 1 && i == 1 {
				return errUnavailable // after two messages, before any response
			}
			if n > 1 {
				if err := ss.Send(&testgrpc.StreamingOutputCallResponse{Payload: m.Payload}); err != nil {
					return err
				}
			}
		}
	}}
	c := dial(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(duplexMethod)))
	stream, err := c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"a", "b"} {
		if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: payload(b)}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	var got []string
	for range 2 {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		got = append(got, string(m.Payload.Body))
	}
	// Committed: this one goes to the second attempt only.
	if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: payload("c")}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	got = append(got, string(m.Payload.Body))
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("Recv after CloseSend: %v, want io.EOF", err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("received %q, want %q", got, want)
	}
	if got, want := rec.call(1), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("first attempt received %q, want %q", got, want)
	}
	if got, want := rec.call(2), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("second attempt received %q, want %q", got, want)
	}
	wantCalls(t, s, 2)
}

// A stream holds its bulkhead slot from the moment it opens until it ends,
// however it ends.
func TestStreamHoldsBulkheadSlot(t *testing.T) {
	ends := []struct {
		name string
		end  func(t *testing.T, stream testgrpc.TestService_StreamingOutputCallClient, cancel context.CancelFunc, release chan struct{})
	}{
		{"EOF", func(t *testing.T, stream testgrpc.TestService_StreamingOutputCallClient, _ context.CancelFunc, release chan struct{}) {
			close(release)
			if _, err := recvAll(stream.Recv); err != nil {
				t.Fatal(err)
			}
		}},
		{"error", func(t *testing.T, stream testgrpc.TestService_StreamingOutputCallClient, _ context.CancelFunc, release chan struct{}) {
			release <- struct{}{} // the handler fails
			_, err := recvAll(stream.Recv)
			wantCode(t, err, codes.Internal)
		}},
		{"context canceled", func(t *testing.T, _ testgrpc.TestService_StreamingOutputCallClient, cancel context.CancelFunc, release chan struct{}) {
			cancel()
			close(release)
		}},
	}
	for _, tt := range ends {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
				if err := sendAll(ss, "first"); err != nil {
					return err
				}
				if n > 1 {
					return nil
				}
				select {
				case _, ok := <-release:
					if ok {
						return status.Error(codes.Internal, "failed")
					}
				case <-ss.Context().Done():
					return ss.Context().Err()
				}
				return sendAll(ss, "second")
			}}
			b := bulkhead.New(1)
			c := dial(t, start(t, s), NewClient(b, WithIdempotentMethods(outMethod)))

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			first, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := first.Recv(); err != nil {
				t.Fatal(err)
			}
			// The first stream committed and is still open: its slot is taken.
			_, err = c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
			wantCode(t, err, codes.Unavailable)
			if !errors.Is(err, bulkhead.ErrFull) {
				t.Errorf("error %v does not match bulkhead.ErrFull", err)
			}

			tt.end(t, first, cancel, release)

			// The slot comes back when the stream ends; after a cancel,
			// gRPC ends the stream on a goroutine of its own, so wait for
			// the slot instead of asking once.
			wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer wcancel()
			for {
				third, err := c.StreamingOutputCall(wctx, &testgrpc.StreamingOutputCallRequest{})
				if err == nil {
					if _, err := recvAll(third.Recv); err != nil {
						t.Fatal(err)
					}
					break
				}
				if !errors.Is(err, bulkhead.ErrFull) || wctx.Err() != nil {
					t.Fatalf("after the first stream ended: %v", err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

func TestStreamBreakerCountsFinalOutcome(t *testing.T) {
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if err := sendAll(ss, "a"); err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		return errUnavailable
	}}
	b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Hour))
	c := dial(t, start(t, s), NewClient(b, WithIdempotentMethods(outMethod)))

	// A stream that succeeds keeps the breaker closed; one that fails after
	// committing opens it when it ends.
	for i, want := range []codes.Code{codes.OK, codes.Unavailable} {
		stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := recvAll(stream.Recv)
		wantCode(t, err, want)
		if len(got) != 1 {
			t.Errorf("stream %d received %q, want one message", i+1, got)
		}
	}
	if got := b.State(); got != breaker.Open {
		t.Fatalf("breaker %v after a failed stream, want open", got)
	}
	_, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	wantCode(t, err, codes.Unavailable)
	if !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("error %v does not match breaker.ErrOpen", err)
	}
	wantCalls(t, s, 2)
}

// A per-attempt timeout bounds the time until the stream commits, not the
// life of the stream.
func TestStreamAttemptTimeout(t *testing.T) {
	const attempt = 50 * time.Millisecond
	proceed := make(chan struct{})
	var serverDeadline bool
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if n == 1 {
			<-ss.Context().Done() // until the client gives up on this attempt
			return ss.Context().Err()
		}
		_, serverDeadline = ss.Context().Deadline()
		if err := sendAll(ss, "a"); err != nil {
			return err
		}
		<-proceed
		return sendAll(ss, "b")
	}}
	p := resilience.Chain(fastRetry(), timeout.New(attempt))
	c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(outMethod)))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * attempt) // the stream has committed: the timeout is over
	close(proceed)
	got, err := recvAll(stream.Recv)
	if err != nil || !slices.Equal(got, []string{"b"}) {
		t.Errorf("after the attempt timeout: received %q, %v; want \"b\" and the end", got, err)
	}
	wantCalls(t, s, 2)
	if serverDeadline {
		t.Error("the server saw a deadline: the per-attempt timeout was sent with the stream")
	}
}

func TestStreamTotalTimeoutBoundsCommittedStream(t *testing.T) {
	const total = 200 * time.Millisecond
	s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
		if err := sendAll(ss, "a"); err != nil {
			return err
		}
		<-ss.Context().Done() // a stream that stalls after its first message
		return ss.Context().Err()
	}}
	p := resilience.Chain(timeout.New(total), fastRetry(), timeout.New(50*time.Millisecond))
	c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(outMethod)))
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := recvAll(stream.Recv)
	if !slices.Equal(got, []string{"a"}) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("received %q, %v; want \"a\", then DeadlineExceeded from the total timeout", got, err)
	}
	wantCalls(t, s, 1)
}

func TestStreamCallerCancelsWhileRetrying(t *testing.T) {
	s := &server{out: func(int, *testgrpc.StreamingOutputCallRequest, outStream) error { return errUnavailable }}
	// Retries wait long enough for the cancellation to land in a wait.
	p := fastRetry()
	c := dial(t, start(t, s), NewClient(p, WithIdempotentMethods(outMethod)))
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = stream.Recv()
	if code := status.Code(err); code != codes.Canceled && code != codes.Unavailable {
		t.Errorf("error %v, want Canceled (or Unavailable, if retries ran out first)", err)
	}
}
