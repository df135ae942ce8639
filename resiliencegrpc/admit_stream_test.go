package resiliencegrpc

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience/internal/redistest"
	"github.com/resilience-go/resilience/internal/telemetry"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/ratelimit/redisrate"
	"github.com/resilience-go/resilience/retry"
)

// decisionLog is an Admitter that keeps the decisions of the admitter it
// wraps, in the order they were taken, so that a test can compare what a
// client reads with what was decided.
type decisionLog struct {
	ratelimit.Admitter

	mu sync.Mutex // guards ds
	ds []ratelimit.Decision
}

func (l *decisionLog) Admit(ctx context.Context, key string) (ratelimit.Decision, error) {
	d, err := l.Admitter.Admit(ctx, key)
	if err == nil {
		l.mu.Lock()
		l.ds = append(l.ds, d)
		l.mu.Unlock()
	}
	return d, err
}

// all returns the decisions taken so far.
func (l *decisionLog) all() []ratelimit.Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ds)
}

// last returns the latest decision, after the n-th, failing the test if
// there are not n of them.
func (l *decisionLog) last(t *testing.T, n int) ratelimit.Decision {
	t.Helper()
	ds := l.all()
	if len(ds) != n {
		t.Fatalf("the admitter took %d decisions, want %d", len(ds), n)
	}
	return ds[n-1]
}

// wantPushbackOf fails the test unless trailer carries the pushback the
// server interceptors send for d: its wait, rounded up to the millisecond.
func wantPushbackOf(t *testing.T, trailer metadata.MD, d ratelimit.Decision) {
	t.Helper()
	if d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("decision %+v: want a rejection with a wait", d)
	}
	want := strconv.FormatInt(int64((d.RetryAfter+time.Millisecond-1)/time.Millisecond), 10)
	if got := trailer.Get(PushbackTrailer); !slices.Equal(got, []string{want}) {
		t.Errorf("trailer %s: %q, want [%s] (the decision's wait of %v)", PushbackTrailer, got, want, d.RetryAfter)
	}
}

// TestServerAdmitterStreams: a stream server interceptor built from
// ratelimit.Enforce over a shared Admitter (the local limiter, and the
// Redis limiter) admits a tenant's quota of streams and turns the rest away
// with ResourceExhausted and the pushback trailer the unary interceptor
// sends; the admitted streams work on meanwhile. The admitter is shared by
// the unary and stream interceptors (one quota for both), a resiliencegrpc
// client reads a turned-away stream's pushback as it reads a unary call's,
// and the decisions are counted and added to the server spans alike for
// unary calls and streams.
//
// The quota gives one request an hour, so none comes back while the test
// runs; the pushback is compared with the admitter's own decision, not
// with the clock.
func TestServerAdmitterStreams(t *testing.T) {
	q := ratelimit.Quota{Name: "tenant", Limit: 3, Window: 3 * time.Hour}
	for _, tt := range []struct {
		name     string
		admitter func(t *testing.T) ratelimit.Admitter
	}{
		{"local", func(*testing.T) ratelimit.Admitter { return ratelimit.NewLocal(q) }},
		{"redis", func(t *testing.T) ratelimit.Admitter {
			rs := redistest.Start(t)
			rc := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialerRetries: 1})
			t.Cleanup(func() { rc.Close() })
			return redisrate.New(rc, q, redisrate.WithMode(redisrate.FailClosed))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testServerAdmitterStreams(t, q, tt.admitter(t))
		})
	}
}

func testServerAdmitterStreams(t *testing.T, q ratelimit.Quota, a ratelimit.Admitter) {
	h := telemetrytest.New(t)
	log := &decisionLog{Admitter: a}
	p := ratelimit.Enforce(log, tenantKey, ratelimit.WithName("tenants"),
		ratelimit.WithMeterProvider(h.MeterProvider), ratelimit.WithTracerProvider(h.TracerProvider))
	s := &server{
		unary: failing(0, nil),
		duplex: func(_ int, ss duplexStream) error {
			for {
				m, err := ss.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := ss.Send(&testgrpc.StreamingOutputCallResponse{Payload: m.Payload}); err != nil {
					return err
				}
			}
		},
	}
	addr := start(t, s,
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(h.TracerProvider), otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))),
		grpc.ChainUnaryInterceptor(UnaryServerInterceptor(p)),
		grpc.ChainStreamInterceptor(StreamServerInterceptor(p)))
	c := dial(t, addr, nil)
	as := func(tenant string) context.Context {
		return metadata.AppendToOutgoingContext(t.Context(), "tenant", tenant)
	}
	decisions := 0

	// Unary calls, for comparison: the quota, then pushback.
	for i := range q.Limit + 2 {
		var trailer metadata.MD
		_, err := c.UnaryCall(as("unary"), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
		decisions++
		d := log.last(t, decisions)
		if i < q.Limit {
			wantCode(t, err, codes.OK)
			continue
		}
		wantCode(t, err, codes.ResourceExhausted)
		wantPushbackOf(t, trailer, d)
	}

	// Streams: the quota of streams is admitted and stays open while the
	// next ones are turned away.
	var open []grpc.BidiStreamingClient[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]
	for i := range q.Limit + 2 {
		stream, err := c.FullDuplexCall(as("streams"))
		if err != nil {
			t.Fatal(err)
		}
		body := "m" + strconv.FormatInt(i, 10)
		// A turned-away stream may have ended before the message is sent
		// (io.EOF); Recv returns its status.
		_ = stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: payload(body)})
		m, err := stream.Recv()
		decisions++
		d := log.last(t, decisions)
		if i < q.Limit {
			if err != nil || string(m.GetPayload().GetBody()) != body {
				t.Fatalf("stream %d: got %v, %v; want the echo of %q", i, m, err, body)
			}
			open = append(open, stream)
			continue
		}
		wantCode(t, err, codes.ResourceExhausted)
		wantPushbackOf(t, stream.Trailer(), d)
	}
	for i, stream := range open {
		body := "again" + strconv.Itoa(i)
		if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: payload(body)}); err != nil {
			t.Fatalf("admitted stream %d: %v", i, err)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		got, err := recvAll(stream.Recv)
		if err != nil || !slices.Equal(got, []string{body}) {
			t.Fatalf("admitted stream %d, after the others were turned away: got %q, %v; want [%s]", i, got, err, body)
		}
	}
	wantCalls(t, s, 2*int(q.Limit))

	// One quota for both interceptors: the tenant of the streams is turned
	// away from unary calls, and the other way round.
	var trailer metadata.MD
	_, err := c.UnaryCall(as("streams"), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	decisions++
	wantCode(t, err, codes.ResourceExhausted)
	wantPushbackOf(t, trailer, log.last(t, decisions))
	stream, err := c.FullDuplexCall(as("unary"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	decisions++
	wantCode(t, err, codes.ResourceExhausted)
	wantPushbackOf(t, stream.Trailer(), log.last(t, decisions))

	// A resiliencegrpc client reads a turned-away stream's pushback as it
	// reads a unary call's: one retry each, after the server's wait
	// capped at the retry policy's 3ms.
	var (
		mu      sync.Mutex
		retries []retry.Event
	)
	rp := retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(time.Millisecond, 3*time.Millisecond),
		retry.WithOnRetry(func(_ context.Context, e retry.Event) {
			mu.Lock()
			defer mu.Unlock()
			retries = append(retries, e)
		}))
	rc := dial(t, addr, NewClient(rp, WithIdempotentMethods(unaryMethod, duplexMethod)))
	_, err = rc.UnaryCall(as("unary"), &testgrpc.SimpleRequest{})
	decisions += 2
	wantCode(t, err, codes.ResourceExhausted)
	if !errors.Is(err, retry.ErrExhausted) {
		t.Errorf("unary call: %v; want the retries exhausted", err)
	}
	rstream, err := rc.FullDuplexCall(as("streams"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rstream.Recv()
	decisions += 2
	wantCode(t, err, codes.ResourceExhausted)
	if !errors.Is(err, retry.ErrExhausted) {
		t.Errorf("stream: %v; want the retries exhausted", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(retries) != 2 {
		t.Fatalf("retries scheduled: %+v; want one for the unary call and one for the stream", retries)
	}
	for _, e := range retries {
		if !e.Pushback || e.Wait != 3*time.Millisecond || status.Code(e.Err) != codes.ResourceExhausted {
			t.Errorf("retry scheduled %+v: want it after ResourceExhausted, on the server's pushback capped at 3ms", e)
		}
	}
	ds := log.all()
	if len(ds) != decisions {
		t.Fatalf("the admitter took %d decisions, want %d", len(ds), decisions)
	}
	wantCalls(t, s, 2*int(q.Limit))

	// Telemetry: each method's decisions counted alike, without the
	// client's address.
	rejected := decisions/2 - int(q.Limit)
	wantEvents := telemetrytest.Want(map[string]int64{
		"rpc.method=grpc.testing.TestService/UnaryCall resilience.name=tenants resilience.policy=ratelimit_server resilience.event=allowed":       q.Limit,
		"rpc.method=grpc.testing.TestService/UnaryCall resilience.name=tenants resilience.policy=ratelimit_server resilience.event=rejected":      int64(rejected),
		"rpc.method=grpc.testing.TestService/FullDuplexCall resilience.name=tenants resilience.policy=ratelimit_server resilience.event=allowed":  q.Limit,
		"rpc.method=grpc.testing.TestService/FullDuplexCall resilience.name=tenants resilience.policy=ratelimit_server resilience.event=rejected": int64(rejected),
	})
	if got := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}"); !maps.Equal(got, wantEvents) {
		t.Errorf("resilience.events:\ngot  %v\nwant %v", got, wantEvents)
	}

	// Each server span, unary or stream, carries its decision as an
	// event, in the order the calls were made.
	waitSpans(t, h, trace.SpanKindServer, decisions)
	var spans []sdktrace.ReadOnlySpan
	for _, sp := range h.Spans.Ended() {
		if sp.SpanKind() == trace.SpanKindServer {
			spans = append(spans, sp)
		}
	}
	slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	if len(spans) != decisions {
		t.Fatalf("%d server spans, want %d", len(spans), decisions)
	}
	for i, sp := range spans {
		var got []telemetrytest.Event
		for _, e := range sp.Events() {
			if strings.HasPrefix(e.Name, "resilience.") {
				got = append(got, telemetrytest.Ev(e.Name, telemetrytest.KVs(e.Attributes...)))
			}
		}
		d := ds[i]
		name := telemetry.NameKey.String("tenants")
		quota := telemetry.QuotaKey.String(q.Name)
		want := telemetrytest.Ev("resilience.ratelimit_server.rejected",
			telemetrytest.KVs(name, quota, attribute.Float64(string(telemetry.RetryInKey), d.RetryAfter.Seconds())))
		if d.Allowed {
			want = telemetrytest.Ev("resilience.ratelimit_server.allowed", telemetrytest.KVs(name, quota, telemetry.RemainingKey.Int64(d.Remaining)))
		}
		if !slices.Equal(got, []telemetrytest.Event{want}) {
			t.Errorf("server span %d (%s): events %v, want %v", i, sp.Name(), got, want)
		}
	}
}
