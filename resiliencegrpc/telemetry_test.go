package resiliencegrpc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/internal/telemetry"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
	"github.com/resilience-go/resilience/timeout"
)

// unaryKV returns the call attributes of the test service's unary method
// called on the loopback server at addr.
func unaryKV(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "rpc.method=grpc.testing.TestService/UnaryCall server.address=127.0.0.1 server.port=" + port + " "
}

// dialTraced connects to addr through c's interceptors, with otelgrpc's
// client stats handler, wrapped in MarkAttempts, starting a span per RPC
// in h's tracer provider.
func dialTraced(t *testing.T, addr string, c *Client, h *telemetrytest.Harness) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(MarkAttempts(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(h.TracerProvider), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider())))),
		grpc.WithChainUnaryInterceptor(c.UnaryInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// attemptSpans returns the resilience.attempt attribute ("none" when
// absent) of the ended spans of kind, in the order they ended, and checks
// that parent, if valid, is their parent.
func attemptSpans(t *testing.T, h *telemetrytest.Harness, kind trace.SpanKind, parent trace.SpanContext) []string {
	t.Helper()
	var got []string
	for _, s := range h.Spans.Ended() {
		if s.SpanKind() != kind {
			continue
		}
		if parent.IsValid() && s.Parent().SpanID() != parent.SpanID() {
			t.Errorf("span %q: parent %v, want the caller's span %v", s.Name(), s.Parent().SpanID(), parent.SpanID())
		}
		got = append(got, attr(s, string(telemetry.AttemptKey)))
	}
	return got
}

// attr returns the value of s's attribute key, "none" when absent.
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return "none"
}

// TestTelemetryUnaryRetries runs a unary call through the standard
// pipeline, with otelgrpc attempt spans, against a server that is
// Unavailable twice: the retry policy's attempts and decisions carry the
// gRPC status code as error.type, and each attempt is its own client span
// carrying its number.
func TestTelemetryUnaryRetries(t *testing.T) {
	h := telemetrytest.New(t)
	s := &server{unary: failing(2, errUnavailable)}
	p, err := standard.New(standard.WithName("users"),
		standard.WithMeterProvider(h.MeterProvider), standard.WithTracerProvider(h.TracerProvider),
		standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Millisecond), retry.WithJitter(0)))
	if err != nil {
		t.Fatal(err)
	}
	addr := start(t, s)
	conn := dialTraced(t, addr, NewClient(p, WithIdempotentMethods(unaryMethod)), h)
	ctx, caller := h.Span(t.Context())
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	caller.End()
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, s, 3)

	if got, want := attemptSpans(t, h, trace.SpanKindClient, caller.SpanContext()), []string{"1", "2", "3"}; !slices.Equal(got, want) {
		t.Errorf("resilience.attempt of the attempt spans: got %v, want %v", got, want)
	}

	evs := h.Events(t, "caller")
	wantEvs := telemetrytest.WantEvents(
		telemetrytest.Ev("resilience.retry.scheduled", "error.type=UNAVAILABLE resilience.attempt=1 resilience.name=users resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
		telemetrytest.Ev("resilience.retry.scheduled", "error.type=UNAVAILABLE resilience.attempt=2 resilience.name=users resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
	)
	if !slices.Equal(evs, wantEvs) {
		t.Errorf("caller's span events:\ngot  %v\nwant %v", evs, wantEvs)
	}

	ms := h.Collect(t)
	attempts := telemetrytest.Counts(t, ms, "resilience.attempt.duration", "s")
	wantAttempts := telemetrytest.Want(map[string]uint64{
		unaryKV(addr) + "resilience.name=users error.type=UNAVAILABLE resilience.attempt=1 resilience.outcome=transient": 1,
		unaryKV(addr) + "resilience.name=users error.type=UNAVAILABLE resilience.attempt=2 resilience.outcome=transient": 1,
		unaryKV(addr) + "resilience.name=users resilience.attempt=3 resilience.outcome=success":                          1,
	})
	if !maps.Equal(attempts, wantAttempts) {
		t.Errorf("resilience.attempt.duration counts:\ngot  %v\nwant %v", attempts, wantAttempts)
	}
	events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
	wantEvents := telemetrytest.Want(map[string]int64{
		unaryKV(addr) + "resilience.name=users resilience.policy=retry resilience.event=scheduled": 2,
	})
	if !maps.Equal(events, wantEvents) {
		t.Errorf("resilience.events:\ngot  %v\nwant %v", events, wantEvents)
	}
	// The pipeline's name and providers reached the breaker, keyed by the
	// connection's target.
	state := telemetrytest.Points(t, ms, "resilience.breaker.state", "{breaker}")
	_, port, _ := net.SplitHostPort(addr)
	if got := state["resilience.breaker.state=closed resilience.name=users server.address=127.0.0.1 server.port="+port]; got != 1 || len(state) != 3 {
		t.Errorf("resilience.breaker.state: got %v, want three series (1 for closed): the breaker of 127.0.0.1:%s, named users", state, port)
	}
}

// TestTelemetryAttemptSpans checks which RPC spans carry resilience.attempt:
// the attempts of a retried stream do, a call under no retry policy does
// not.
func TestTelemetryAttemptSpans(t *testing.T) {
	t.Run("stream retried before commit", func(t *testing.T) {
		h := telemetrytest.New(t)
		s := &server{out: func(n int, _ *testgrpc.StreamingOutputCallRequest, ss outStream) error {
			if n == 1 {
				return errUnavailable
			}
			return sendAll(ss, "a")
		}}
		conn := dialTraced(t, start(t, s), NewClient(fastRetry(), WithIdempotentMethods(outMethod)), h)
		ctx, caller := h.Span(t.Context())
		stream, err := testgrpc.NewTestServiceClient(conn).StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := recvAll(stream.Recv)
		caller.End()
		if err != nil || !slices.Equal(got, []string{"a"}) {
			t.Fatalf("received %v, %v; want [a], nil", got, err)
		}
		if got, want := attemptSpans(t, h, trace.SpanKindClient, caller.SpanContext()), []string{"1", "2"}; !slices.Equal(got, want) {
			t.Errorf("resilience.attempt of the attempt spans: got %v, want %v", got, want)
		}
	})
	t.Run("no retry policy", func(t *testing.T) {
		h := telemetrytest.New(t)
		s := &server{unary: failing(0, nil)}
		conn := dialTraced(t, start(t, s), NewClient(timeout.New(time.Minute)), h)
		if _, err := testgrpc.NewTestServiceClient(conn).UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		if got, want := attemptSpans(t, h, trace.SpanKindClient, trace.SpanContext{}), []string{"none"}; !slices.Equal(got, want) {
			t.Errorf("resilience.attempt of the RPC span: got %v, want %v", got, want)
		}
	})
}

// TestTelemetryBreakerRejection opens a breaker with a failed call; the
// next call is turned away without reaching the server, fails with
// Unavailable, and the rejection is counted with the call's attributes and
// added to the caller's span.
func TestTelemetryBreakerRejection(t *testing.T) {
	h := telemetrytest.New(t)
	s := &server{unary: failing(100, errUnavailable)}
	b := breaker.New(breaker.WithName("users"), breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Hour),
		breaker.WithMeterProvider(h.MeterProvider), breaker.WithTracerProvider(h.TracerProvider))
	addr := start(t, s)
	c := dial(t, addr, NewClient(b))
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.Unavailable)

	ctx, caller := h.Span(t.Context())
	_, err = c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	caller.End()
	wantCode(t, err, codes.Unavailable)
	if !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("error %v: want one matching breaker.ErrOpen", err)
	}
	wantCalls(t, s, 1)

	events := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	wantEvents := telemetrytest.Want(map[string]int64{
		unaryKV(addr) + "resilience.name=users resilience.policy=breaker resilience.event=opened":   1,
		unaryKV(addr) + "resilience.name=users resilience.policy=breaker resilience.event=rejected": 1,
	})
	if !maps.Equal(events, wantEvents) {
		t.Errorf("resilience.events:\ngot  %v\nwant %v", events, wantEvents)
	}
	evs := h.Events(t, "caller")
	if len(evs) != 1 || evs[0].Name != "resilience.breaker.rejected" ||
		!strings.Contains(evs[0].Attrs, "resilience.breaker.state=open") || !strings.Contains(evs[0].Attrs, "resilience.name=users") {
		t.Errorf("caller's span events: got %v, want one resilience.breaker.rejected, open, named users", evs)
	}
}

// TestTelemetryAttemptTimeout lets a per-attempt timeout cut two attempts
// short: the timeout's expired events and the retry's attempts and
// decisions carry the status the attempts ended with, DEADLINE_EXCEEDED.
func TestTelemetryAttemptTimeout(t *testing.T) {
	h := telemetrytest.New(t)
	s := &server{unary: func(ctx context.Context, _ int, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}}
	const d = 20 * time.Millisecond
	p := resilience.Chain(
		fastRetry(retry.WithName("users"), retry.WithMaxAttempts(2), retry.WithBackoff(time.Millisecond, time.Millisecond), retry.WithJitter(0),
			retry.WithMeterProvider(h.MeterProvider), retry.WithTracerProvider(h.TracerProvider)),
		timeout.New(d, timeout.WithName("users.attempt"),
			timeout.WithMeterProvider(h.MeterProvider), timeout.WithTracerProvider(h.TracerProvider)))
	addr := start(t, s)
	c := dial(t, addr, NewClient(p, WithIdempotentMethods(unaryMethod)))
	ctx, caller := h.Span(t.Context())
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	caller.End()
	wantCode(t, err, codes.DeadlineExceeded)
	if !errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, retry.ErrExhausted) {
		t.Errorf("error %v: want one matching timeout.ErrTimeout and retry.ErrExhausted", err)
	}

	expired := telemetrytest.Ev("resilience.timeout.expired", fmt.Sprintf("error.type=DEADLINE_EXCEEDED resilience.name=users.attempt resilience.timeout=%v", d.Seconds()))
	evs := h.Events(t, "caller")
	wantEvs := telemetrytest.WantEvents(
		expired,
		telemetrytest.Ev("resilience.retry.scheduled", "error.type=DEADLINE_EXCEEDED resilience.attempt=1 resilience.name=users resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
		expired,
		telemetrytest.Ev("resilience.retry.exhausted", "error.type=DEADLINE_EXCEEDED resilience.attempt=2 resilience.name=users resilience.outcome=transient resilience.reason=exhausted"),
	)
	if !slices.Equal(evs, wantEvs) {
		t.Errorf("caller's span events:\ngot  %v\nwant %v", evs, wantEvs)
	}
	attempts := telemetrytest.Counts(t, h.Collect(t), "resilience.attempt.duration", "s")
	wantAttempts := telemetrytest.Want(map[string]uint64{
		unaryKV(addr) + "resilience.name=users error.type=DEADLINE_EXCEEDED resilience.attempt=1 resilience.outcome=transient": 1,
		unaryKV(addr) + "resilience.name=users error.type=DEADLINE_EXCEEDED resilience.attempt=2 resilience.outcome=transient": 1,
	})
	if !maps.Equal(attempts, wantAttempts) {
		t.Errorf("resilience.attempt.duration counts:\ngot  %v\nwant %v", attempts, wantAttempts)
	}
}

// TestTelemetryServerRateLimit rejects calls on the server: the limiter's
// rejections are counted with rpc.method and without the client's
// address, and added to otelgrpc's server span.
func TestTelemetryServerRateLimit(t *testing.T) {
	h := telemetrytest.New(t)
	s := &server{
		unary: failing(0, nil),
		out:   func(int, *testgrpc.StreamingOutputCallRequest, outStream) error { return nil },
	}
	lim := ratelimit.NewKeyed(rate.Every(time.Hour), 1, ratelimit.WithName("clients"),
		ratelimit.WithMeterProvider(h.MeterProvider), ratelimit.WithTracerProvider(h.TracerProvider))
	addr := start(t, s,
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(h.TracerProvider), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))),
		grpc.ChainUnaryInterceptor(UnaryServerInterceptor(lim)),
		grpc.ChainStreamInterceptor(StreamServerInterceptor(lim)))
	c := dial(t, addr, nil)
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	wantCode(t, err, codes.ResourceExhausted)
	stream, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = recvAll(stream.Recv)
	wantCode(t, err, codes.ResourceExhausted)
	wantCalls(t, s, 1)

	events := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	wantEvents := telemetrytest.Want(map[string]int64{
		"rpc.method=grpc.testing.TestService/UnaryCall resilience.name=clients resilience.policy=ratelimit_server resilience.event=rejected":           1,
		"rpc.method=grpc.testing.TestService/StreamingOutputCall resilience.name=clients resilience.policy=ratelimit_server resilience.event=rejected": 1,
	})
	if !maps.Equal(events, wantEvents) {
		t.Errorf("resilience.events (no client address):\ngot  %v\nwant %v", events, wantEvents)
	}

	// In the order the calls were made, the last two were rejected.
	waitSpans(t, h, trace.SpanKindServer, 3)
	spans := h.Spans.Ended()
	slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	var rejected []string
	for _, sp := range spans {
		if sp.SpanKind() != trace.SpanKindServer {
			continue
		}
		var names []string
		for _, e := range sp.Events() {
			if strings.HasPrefix(e.Name, "resilience.") {
				names = append(names, e.Name)
			}
		}
		rejected = append(rejected, fmt.Sprintf("%s %v", sp.Name(), names))
	}
	want := []string{
		"grpc.testing.TestService/UnaryCall []",
		"grpc.testing.TestService/UnaryCall [resilience.ratelimit_server.rejected]",
		"grpc.testing.TestService/StreamingOutputCall [resilience.ratelimit_server.rejected]",
	}
	if !slices.Equal(rejected, want) {
		t.Errorf("server spans and their events:\ngot  %v\nwant %v", rejected, want)
	}
}

// TestTelemetryServerUnknownMethod checks that a method a client made up,
// reaching an unknown-service handler, is recorded as rpc.method "_OTHER".
func TestTelemetryServerUnknownMethod(t *testing.T) {
	h := telemetrytest.New(t)
	lim := ratelimit.NewKeyed(rate.Every(time.Hour), 1, ratelimit.WithMeterProvider(h.MeterProvider))
	addr := start(t, &server{},
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error { return status.Error(codes.Unimplemented, "no") }),
		grpc.ChainStreamInterceptor(StreamServerInterceptor(lim)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, want := range []codes.Code{codes.Unimplemented, codes.ResourceExhausted} {
		err := conn.Invoke(t.Context(), fmt.Sprintf("/made.Up%d/Method", i), &testgrpc.Empty{}, &testgrpc.Empty{})
		wantCode(t, err, want)
	}
	events := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	want := map[string]int64{"resilience.event=rejected resilience.policy=ratelimit_server rpc.method=_OTHER": 1}
	if !maps.Equal(events, want) {
		t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
	}
}

func TestErrorType(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, "down"), "UNAVAILABLE"},
		{status.Error(codes.Canceled, "x"), "CANCELLED"},
		{status.Error(codes.ResourceExhausted, "x"), "RESOURCE_EXHAUSTED"},
		{status.Error(codes.Unauthenticated, "x"), "UNAUTHENTICATED"},
		{status.Error(codes.Code(99), "a server's own code"), "_OTHER"},
		{fmt.Errorf("wrapped: %w", status.Error(codes.NotFound, "x")), "NOT_FOUND"},
	}
	for _, tt := range tests {
		err := classify(context.Background(), tt.err, nil)
		if got := telemetry.ErrorType(err); got != tt.want {
			t.Errorf("error.type of %v: got %q, want %q", tt.err, got, tt.want)
		}
		// What the caller receives reads as the attempt's error.
		got := toStatus(err)
		if got.Error() != tt.err.Error() || status.Code(got) != status.Code(tt.err) {
			t.Errorf("toStatus(classify(%v)) = %v, want the attempt's error", tt.err, got)
		}
	}
	// An attempt's own status error reaches the caller unchanged.
	raw := status.Error(codes.Unavailable, "down")
	if got := toStatus(classify(context.Background(), raw, nil)); got != raw {
		t.Errorf("toStatus(classify(raw)) = %#v, want raw itself", got)
	}
}

// waitSpans waits until n spans of kind have ended: a server reports the
// end of an RPC after the client may have seen its status.
func waitSpans(t *testing.T, h *telemetrytest.Harness, kind trace.SpanKind, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		got := 0
		for _, s := range h.Spans.Ended() {
			if s.SpanKind() == kind {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %v spans ended, want %d", got, kind, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection through a custom resolver ("orders:///orders") records the
// endpoint it names as server.address, never the target's URL.
func TestCustomResolverTargetNotAURL(t *testing.T) {
	s := &server{unary: failing(1, errUnavailable)}
	addr := start(t, s)
	r := manual.NewBuilderWithScheme("orders")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addr}}})
	h := telemetrytest.New(t)
	c, err := Standard(WithIdempotentMethods(unaryMethod), WithPipeline(
		standard.WithMeterProvider(h.MeterProvider),
		standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Millisecond))))
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	spy := NewClient(policyFunc(func(ctx context.Context, op func(context.Context) error) error {
		call, _ := resilience.CallFrom(ctx)
		seen = call.Target
		return op(ctx)
	}))
	conn, err := grpc.NewClient("orders:///orders", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(spy.UnaryInterceptor(), c.UnaryInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := testgrpc.NewTestServiceClient(conn).UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if seen != "orders" {
		t.Errorf("call target %q, want %q", seen, "orders")
	}
	ms := h.Collect(t)
	events := telemetrytest.Points(t, ms, telemetry.EventsName, "{event}")
	if len(events) == 0 {
		t.Fatal("no event recorded")
	}
	for name, m := range ms {
		for _, a := range seriesAttrs(m) {
			if strings.Contains(a, "://") || strings.Contains(a, "server.address=orders:") {
				t.Errorf("%s: series %q holds the target's URL", name, a)
			}
			if strings.Contains(a, "server.address") && !strings.Contains(a+" ", "server.address=orders ") {
				t.Errorf("%s: series %q, want server.address=orders", name, a)
			}
		}
	}
}

// policyFunc is a policy made of a function.
type policyFunc func(ctx context.Context, op func(context.Context) error) error

func (f policyFunc) Do(ctx context.Context, op func(context.Context) error) error { return f(ctx, op) }

// seriesAttrs returns the attributes of each series of m.
func seriesAttrs(m metricdata.Metrics) []string {
	var out []string
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, telemetrytest.Attrs(p.Attributes))
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, telemetrytest.Attrs(p.Attributes))
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, telemetrytest.Attrs(p.Attributes))
		}
	}
	return out
}
