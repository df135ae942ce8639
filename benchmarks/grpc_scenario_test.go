package benchmarks

// Behaviour scenarios for gRPC against a real loopback server: our
// interceptors beside grpc-go's built-in retry (a service config's
// retryPolicy). As in scenario_test.go, only our behaviour is asserted;
// grpc-go's is logged (go test -v -run ScenarioGRPC).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/resiliencegrpc"
	"github.com/resilience-go/resilience/retry"
)

// A grpcContender is one client configuration a scenario calls through.
type grpcContender struct {
	name string
	ours bool
	// opts returns the dial options. Ours report each retry they
	// schedule to onRetry.
	opts func(t *testing.T, onRetry func(context.Context, retry.Event)) []grpc.DialOption
}

// oursGRPC is our Client on the pipeline of package resiliencegrpc's
// documentation (timeout 30s, retry, timeout 10s), with methods declared
// idempotent and the retry options given.
func oursGRPC(methods []string, retryOpts ...retry.Option) grpcContender {
	return grpcContender{name: "resilience timeout+retry+timeout", ours: true,
		opts: func(_ *testing.T, onRetry func(context.Context, retry.Event)) []grpc.DialOption {
			p := oursChain(append(slices.Clone(retryOpts), retry.WithOnRetry(onRetry))...)
			return interceptors(resiliencegrpc.NewClient(p, resiliencegrpc.WithIdempotentMethods(methods...)))
		}}
}

// oursGRPCStandard is our Client on standard.New's pipeline, with methods
// declared idempotent, as the README shows it.
func oursGRPCStandard(methods []string, retryOpts ...retry.Option) grpcContender {
	return grpcContender{name: "resilience standard", ours: true,
		opts: func(t *testing.T, onRetry func(context.Context, retry.Event)) []grpc.DialOption {
			p := oursStandardPolicy(t, append(slices.Clone(retryOpts), retry.WithOnRetry(onRetry))...)
			return interceptors(resiliencegrpc.NewClient(p, resiliencegrpc.WithIdempotentMethods(methods...)))
		}}
}

// grpcGoRetry is a plain grpc-go connection whose default service config
// is config.
func grpcGoRetry(name, config string) grpcContender {
	return grpcContender{name: name,
		opts: func(*testing.T, func(context.Context, retry.Event)) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithDefaultServiceConfig(config)}
		}}
}

// retryEvents collects the retries our policy scheduled.
type retryEvents struct {
	mu  sync.Mutex // guards evs
	evs []retry.Event
}

func (r *retryEvents) add(_ context.Context, e retry.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

// waits returns the scheduled waits, and whether each came from pushback.
func (r *retryEvents) waits() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ws []string
	for _, e := range r.evs {
		w := e.Wait.Round(time.Millisecond).String()
		if e.Pushback {
			w += " (pushback)"
		}
		ws = append(ws, w)
	}
	return ws
}

func (r *retryEvents) list() []retry.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// runGRPC runs f for each contender in a parallel subtest, against a
// fresh server built by newServer, with a client dialled through the
// contender and a context that bounds the subtest's calls.
func runGRPC(t *testing.T, cs []grpcContender, newServer func() *grpcServer,
	f func(t *testing.T, ctx context.Context, c grpcContender, s *grpcServer, client testgrpc.TestServiceClient, evs *retryEvents)) {
	t.Helper()
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newServer()
			evs := &retryEvents{}
			client := dialGRPC(t, startGRPC(t, s), c.opts(t, evs.add)...)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f(t, ctx, c, s, client, evs)
		})
	}
}

var errUnavailable = status.Error(codes.Unavailable, "down")

// failingUnary answers the first n calls with err, then OK.
func failingUnary(n int, err error) func() *grpcServer {
	return func() *grpcServer {
		return &grpcServer{unary: func(_ context.Context, call int) (*testgrpc.SimpleResponse, error) {
			if call <= n {
				return nil, err
			}
			return &testgrpc.SimpleResponse{Username: "ok"}, nil
		}}
	}
}

// grpcResult describes what a caller got, for the log.
func grpcResult(resp *testgrpc.SimpleResponse, err error) string {
	if err != nil {
		return fmt.Sprintf("error %v", short(err))
	}
	return fmt.Sprintf("OK %q", resp.GetUsername())
}

// TestScenarioGRPCUnavailableTwice: an idempotent unary method answering
// Unavailable twice, then OK.
func TestScenarioGRPCUnavailableTwice(t *testing.T) {
	idem := []string{unaryMethod}
	cs := []grpcContender{
		oursGRPC(idem),
		oursGRPCStandard(idem),
		grpcGoRetry("grpc-go retry (service config, 4 attempts)", retryServiceConfig("10s", unaryMethod)),
	}
	runGRPC(t, cs, failingUnary(2, errUnavailable), func(t *testing.T, ctx context.Context, c grpcContender, s *grpcServer, client testgrpc.TestServiceClient, evs *retryEvents) {
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		t.Logf("%-45s calls seen by the server: %d, gaps %v; caller got %s; our scheduled waits %v",
			c.name, s.calls(), s.gaps(), grpcResult(resp, err), evs.waits())
		if c.ours {
			if err != nil || resp.GetUsername() != "ok" {
				t.Errorf("caller got %s, want the third attempt's OK", grpcResult(resp, err))
			}
			if n := s.calls(); n != 3 {
				t.Errorf("server saw %d calls, want 3", n)
			}
		}
	})
}

// TestScenarioGRPCNotIdempotent: a unary method that is not declared
// idempotent, answering Unavailable. The client declares another method of
// the service idempotent (CacheableUnaryCall), as a client would that has
// both reads and writes. grpc-go's retry policy is configured as its
// documentation shows it, once for the whole service, and once for the
// idempotent method alone.
func TestScenarioGRPCNotIdempotent(t *testing.T) {
	idem := []string{cacheableMethod}
	cs := []grpcContender{
		oursGRPC(idem),
		oursGRPCStandard(idem),
		grpcGoRetry("grpc-go retry (policy for the whole service)", retryServiceConfig("10s")),
		grpcGoRetry("grpc-go retry (policy for CacheableUnaryCall only)", retryServiceConfig("10s", cacheableMethod)),
	}
	runGRPC(t, cs, failingUnary(100, errUnavailable), func(t *testing.T, ctx context.Context, c grpcContender, s *grpcServer, client testgrpc.TestServiceClient, evs *retryEvents) {
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		t.Logf("%-52s calls seen by the server: %d; caller got %s", c.name, s.calls(), grpcResult(resp, err))
		if c.ours {
			if n := s.calls(); n != 1 {
				t.Errorf("server saw %d calls of a method not declared idempotent, want 1", n)
			}
			if got := status.Code(err); got != codes.Unavailable {
				t.Errorf("caller got code %v (error %v), want Unavailable", got, err)
			}
			if e := evs.list(); len(e) != 0 {
				t.Errorf("retries scheduled: %+v, want none", e)
			}
		}
	})
}

// TestScenarioGRPCPushback: a unary method answering Unavailable with the
// trailer grpc-retry-pushback-ms, then OK. Ours must wait what the server
// asked, capped by its maximum delay; the retry's own record of the wait
// is asserted, the gap the server saw is logged.
func TestScenarioGRPCPushback(t *testing.T) {
	idem := []string{unaryMethod}
	tests := []struct {
		name     string
		pushback time.Duration
		// maxDelay is the retry's maximum delay, ours and grpc-go's
		// (maxBackoff); zero leaves both at 10s.
		maxDelay time.Duration
		want     time.Duration // our wait
	}{
		{"300ms", 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"2s, max delay 500ms", 2 * time.Second, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var retryOpts []retry.Option
			maxBackoff := "10s"
			if tt.maxDelay > 0 {
				retryOpts = append(retryOpts, retry.WithBackoff(100*time.Millisecond, tt.maxDelay))
				maxBackoff = fmt.Sprintf("%gs", tt.maxDelay.Seconds())
			}
			cs := []grpcContender{
				oursGRPC(idem, retryOpts...),
				oursGRPCStandard(idem, retryOpts...),
				grpcGoRetry("grpc-go retry (maxBackoff "+maxBackoff+")", retryServiceConfig(maxBackoff, unaryMethod)),
			}
			ms := fmt.Sprint(tt.pushback.Milliseconds())
			newServer := func() *grpcServer {
				return &grpcServer{unary: func(ctx context.Context, call int) (*testgrpc.SimpleResponse, error) {
					if call == 1 {
						grpc.SetTrailer(ctx, metadata.Pairs(resiliencegrpc.PushbackTrailer, ms))
						return nil, errUnavailable
					}
					return &testgrpc.SimpleResponse{Username: "ok"}, nil
				}}
			}
			runGRPC(t, cs, newServer, func(t *testing.T, ctx context.Context, c grpcContender, s *grpcServer, client testgrpc.TestServiceClient, evs *retryEvents) {
				resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
				t.Logf("%-40s pushback %sms: gap between calls at the server %v; caller got %s; our scheduled waits %v",
					c.name, ms, s.gaps(), grpcResult(resp, err), evs.waits())
				if !c.ours {
					return
				}
				if err != nil || s.calls() != 2 {
					t.Errorf("caller got %s after %d calls, want OK after 2", grpcResult(resp, err), s.calls())
				}
				want := []retry.Event{{Attempt: 1, Wait: tt.want, Pushback: true}}
				got := evs.list()
				for i := range got {
					got[i].Err = nil
				}
				if !slices.Equal(got, want) {
					t.Errorf("retries scheduled %+v, want %+v", got, want)
				}
			})
		})
	}
}

// TestScenarioGRPCStream: a server-streaming method whose first call fails
// with Unavailable, at three points, and whose second call sends five
// messages. Ours retries a stream only before it commits (before any
// header or message arrived) and never delivers a message twice.
func TestScenarioGRPCStream(t *testing.T) {
	const total = 5
	tests := []struct {
		name string
		// fail is the first call's handler up to its failure.
		fail func(ss outStream) error
		// What ours must give the caller.
		wantCalls int
		wantMsgs  int
		wantCode  codes.Code
	}{
		{"before its header", func(outStream) error { return nil }, 2, total, codes.OK},
		{"after its header", func(ss outStream) error { return ss.SendHeader(metadata.MD{}) }, 1, 0, codes.Unavailable},
		{"after 2 messages", func(ss outStream) error { return sendMsgs(ss, 2) }, 1, 2, codes.Unavailable},
	}
	idem := []string{outMethod}
	cs := []grpcContender{
		oursGRPC(idem),
		oursGRPCStandard(idem),
		grpcGoRetry("grpc-go retry (service config, 4 attempts)", retryServiceConfig("10s", outMethod)),
	}
	for _, tt := range tests {
		t.Run("Unavailable "+tt.name, func(t *testing.T) {
			t.Parallel()
			newServer := func() *grpcServer {
				return &grpcServer{out: func(call int, ss outStream) error {
					if call == 1 {
						if err := tt.fail(ss); err != nil {
							return err
						}
						return errUnavailable
					}
					return sendMsgs(ss, total)
				}}
			}
			runGRPC(t, cs, newServer, func(t *testing.T, ctx context.Context, c grpcContender, s *grpcServer, client testgrpc.TestServiceClient, evs *retryEvents) {
				msgs, err := recvStream(ctx, client)
				dups := duplicates(msgs)
				t.Logf("%-42s failing %s: calls seen by the server: %d; caller received %d message(s) %v, %d duplicate(s), then %v",
					c.name, tt.name, s.calls(), len(msgs), msgs, dups, endOf(err))
				if !c.ours {
					return
				}
				if dups != 0 {
					t.Errorf("caller received %d duplicate message(s): %v", dups, msgs)
				}
				if n := s.calls(); n != tt.wantCalls {
					t.Errorf("server saw %d calls, want %d", n, tt.wantCalls)
				}
				if len(msgs) != tt.wantMsgs || status.Code(err) != tt.wantCode {
					t.Errorf("caller received %d message(s), then %v; want %d, then %v", len(msgs), endOf(err), tt.wantMsgs, tt.wantCode)
				}
			})
		})
	}
}

// TestScenarioGRPCLayered: our interceptors on a connection whose service
// config also turns on grpc-go's retry, against a method that always
// answers Unavailable. Nothing is asserted: it shows what a user who turns
// on both gets.
func TestScenarioGRPCLayered(t *testing.T) {
	idem := []string{unaryMethod}
	config := retryServiceConfig("10s", unaryMethod)
	both := func(c grpcContender) grpcContender {
		return grpcContender{name: c.name + " + grpc-go retry", ours: c.ours,
			opts: func(t *testing.T, onRetry func(context.Context, retry.Event)) []grpc.DialOption {
				return append(c.opts(t, onRetry), grpc.WithDefaultServiceConfig(config))
			}}
	}
	cs := []grpcContender{both(oursGRPC(idem)), grpcGoRetry("grpc-go retry alone", config)}
	runGRPC(t, cs, failingUnary(100, errUnavailable), func(t *testing.T, ctx context.Context, c grpcContender, s *grpcServer, client testgrpc.TestServiceClient, evs *retryEvents) {
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		t.Logf("%-50s calls seen by the server: %d; our scheduled waits %v; caller got %s",
			c.name, s.calls(), evs.waits(), grpcResult(resp, err))
	})
}

// sendMsgs sends n messages, "m0", "m1", ...
func sendMsgs(ss outStream, n int) error {
	for i := range n {
		if err := ss.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: fmt.Appendf(nil, "m%d", i)}}); err != nil {
			return err
		}
	}
	return nil
}

// recvStream opens the server stream and reads it to its end, returning
// the bodies received and the error that ended it (nil for io.EOF).
func recvStream(ctx context.Context, client testgrpc.TestServiceClient) ([]string, error) {
	stream, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		return nil, err
	}
	var msgs []string
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, string(m.GetPayload().GetBody()))
	}
}

// duplicates counts the messages received more than once.
func duplicates(msgs []string) int {
	seen := make(map[string]bool)
	n := 0
	for _, m := range msgs {
		if seen[m] {
			n++
		}
		seen[m] = true
	}
	return n
}

func endOf(err error) string {
	if err == nil {
		return "end of stream"
	}
	return short(err)
}
