package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestGlobalProviderSetLater is the only test that sets the global
// providers: a policy built before otel.SetMeterProvider and
// otel.SetTracerProvider reports to them. OTel's global providers delegate
// once per process, so the test runs in a process of its own, whatever
// -count says.
func TestGlobalProviderSetLater(t *testing.T) {
	if os.Getenv("RESILIENCE_GLOBAL_OTEL_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGlobalProviderSetLater$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "RESILIENCE_GLOBAL_OTEL_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestGlobalProviderSetLater") {
			t.Fatalf("in its own process: %v\n%s", err, out)
		}
		return
	}
	p := retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(time.Millisecond, time.Millisecond))
	h := telemetrytest.New(t)
	otel.SetMeterProvider(h.MeterProvider)
	otel.SetTracerProvider(h.TracerProvider)

	ctx, span := h.Span(context.Background())
	p.Do(ctx, func(context.Context) error { return errors.New("boom") })
	span.End()
	events := telemetrytest.Points(t, h.Collect(t), telemetry.EventsName, "{event}")
	want := map[string]int64{
		"resilience.event=scheduled resilience.policy=retry": 1,
		"resilience.event=exhausted resilience.policy=retry": 1,
	}
	if !maps.Equal(events, want) {
		t.Errorf("got %v, want %v", events, want)
	}
	if evs := h.Events(t, "caller"); len(evs) != 2 {
		t.Errorf("got span events %v, want scheduled and exhausted", evs)
	}
}

func TestNoopProvidersSwitchOff(t *testing.T) {
	p := telemetry.New(telemetry.KindRetry, telemetry.Config{MeterProvider: metricnoop.NewMeterProvider(), TracerProvider: tracenoop.NewTracerProvider()})
	if p.Metrics() || p.Meter() != nil || p.Tracer() != nil {
		t.Error("no-op providers must switch telemetry off")
	}
	h := telemetrytest.New(t)
	ctx, span := h.Span(context.Background())
	if p.Span(ctx) != nil {
		t.Error("Span must be nil with a no-op tracer provider, even under a recording span")
	}
	span.End()
	var nilPolicy *telemetry.Policy
	nilPolicy.Event(ctx, telemetry.EventRejected) // must not panic
}

func TestErrorType(t *testing.T) {
	resp := &http.Response{StatusCode: 503, Status: "503 Service Unavailable"}
	tests := []struct {
		err  error
		want string
	}{
		{resilience.Mark(&resiliencehttp.StatusError{Response: resp}, resilience.KindTransient), "503"},
		{fmt.Errorf("wrapped: %w", &resiliencehttp.StatusError{Response: resp}), "503"},
		{&timeout.Error{After: time.Second, Err: context.DeadlineExceeded}, "timeout"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{errors.New("connection reset by peer"), "transient"},
		{resilience.Mark(errors.New("x509: bad certificate"), resilience.KindPermanent), "permanent"},
		{resilience.Mark(errors.New("breaker: circuit open"), resilience.KindThrottled), "throttled"},
	}
	for _, tt := range tests {
		if got := telemetry.ErrorType(tt.err); got != tt.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestCallAttrs(t *testing.T) {
	tests := []struct {
		call resilience.Call
		want string
	}{
		{resilience.Call{Target: "api.example.com:443", Method: "GET"}, "http.request.method=GET server.address=api.example.com server.port=443"},
		{resilience.Call{Target: "api.example.com", Method: "FROB"}, "http.request.method=_OTHER server.address=api.example.com"},
		{resilience.Call{Target: "[2001:db8::1]:80", Method: "PUT"}, "http.request.method=PUT server.address=2001:db8::1 server.port=80"},
		{resilience.Call{Target: "users.internal:50051", Method: "/users.v1.Users/Get"}, "rpc.method=users.v1.Users/Get server.address=users.internal server.port=50051"},
		{resilience.Call{}, ""},
	}
	for _, tt := range tests {
		ctx := resilience.WithCall(context.Background(), tt.call)
		if got := telemetrytest.KVs(telemetry.CallAttrs(ctx, nil)...); got != tt.want {
			t.Errorf("CallAttrs(%+v) = %q, want %q", tt.call, got, tt.want)
		}
	}
	if got := telemetry.CallAttrs(context.Background(), nil); len(got) != 0 {
		t.Errorf("outside any call: got %v, want nothing", got)
	}
}

func TestObserveStopsWithOwner(t *testing.T) {
	h := telemetrytest.New(t)
	p := telemetry.New(telemetry.KindBulkhead, telemetry.Config{MeterProvider: h.MeterProvider})
	g, _ := p.Meter().Int64ObservableGauge("test.gauge")
	// Like the real owners (a Breaker, a Bulkhead), the owner holds a
	// pointer: a small pointer-free object would come from the tiny
	// allocator, whose shared blocks may keep it from being collected.
	type owner struct {
		v    int64
		next *int64
	}
	o := &owner{v: 7}
	telemetry.Observe(p, o, func(o *owner, obs metric.Observer) {
		obs.ObserveInt64(g, o.v, metric.WithAttributes(attribute.String("k", "v")))
	}, g)
	if got := telemetrytest.Points(t, h.Collect(t), "test.gauge", ""); got["k=v"] != 7 {
		t.Fatalf("got %v, want k=v: 7", got)
	}
	runtime.KeepAlive(o)
	o = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if got := telemetrytest.Points(t, h.Collect(t), "test.gauge", ""); len(got) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a collected owner is still observed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerPort(t *testing.T) {
	for _, tt := range []struct {
		target string
		port   int
		ok     bool
	}{
		{"api.example.com:443", 443, true},
		{"[::1]:8080", 8080, true},
		{"127.0.0.1:0", 0, true},
		{"api.example.com", 0, false},
		{"[::1]", 0, false},
		{"host:99999", 0, false},
		{"host:http", 0, false},
		{"", 0, false},
	} {
		if port, ok := telemetry.ServerPort(tt.target); port != tt.port || ok != tt.ok {
			t.Errorf("ServerPort(%q) = %d, %v; want %d, %v", tt.target, port, ok, tt.port, tt.ok)
		}
	}
}
