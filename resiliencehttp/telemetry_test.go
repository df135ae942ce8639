package resiliencehttp_test

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/resiliencehttp"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// TestTelemetryAttemptSpans runs the Standard pipeline over otelhttp against
// a server that fails twice: each attempt is its own client span, the
// retries carry http.request.resend_count, and the policies' decisions are
// events on the caller's span.
func TestTelemetryAttemptSpans(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	h := telemetrytest.New(t)
	conns := http.DefaultTransport.(*http.Transport).Clone()
	defer conns.CloseIdleConnections()
	base := otelhttp.NewTransport(resiliencehttp.MarkResends(conns),
		otelhttp.WithTracerProvider(h.TracerProvider), otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()))
	tr, err := resiliencehttp.Standard(base,
		standard.WithName("users"),
		standard.WithMeterProvider(h.MeterProvider), standard.WithTracerProvider(h.TracerProvider),
		standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Millisecond), retry.WithJitter(0)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, caller := h.Span(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/users/12345", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	caller.End()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}

	var resends []string
	for _, s := range h.Spans.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		if s.Parent().SpanID() != caller.SpanContext().SpanID() {
			t.Errorf("attempt span %q: parent %v, want the caller's span", s.Name(), s.Parent().SpanID())
		}
		rc := "none"
		for _, a := range s.Attributes() {
			if a.Key == "http.request.resend_count" {
				rc = a.Value.String()
			}
		}
		resends = append(resends, rc)
	}
	if want := []string{"none", "1", "2"}; !slices.Equal(resends, want) {
		t.Errorf("http.request.resend_count of the attempt spans: got %v, want %v", resends, want)
	}

	evs := h.Events(t, "caller")
	wantEvs := telemetrytest.WantEvents(
		telemetrytest.Ev("resilience.retry.scheduled", "error.type=503 resilience.attempt=1 resilience.name=users resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
		telemetrytest.Ev("resilience.retry.scheduled", "error.type=503 resilience.attempt=2 resilience.name=users resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
	)
	if !slices.Equal(evs, wantEvs) {
		t.Errorf("caller's span events:\ngot  %v\nwant %v", evs, wantEvs)
	}

	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	callKV := "http.request.method=GET server.address=127.0.0.1 server.port=" + port + " resilience.name=users"
	attempts := telemetrytest.Counts(t, h.Collect(t), "resilience.attempt.duration", "s")
	want := telemetrytest.Want(map[string]uint64{
		callKV + " error.type=503 resilience.attempt=1 resilience.outcome=transient": 1,
		callKV + " error.type=503 resilience.attempt=2 resilience.outcome=transient": 1,
		callKV + " resilience.attempt=3 resilience.outcome=success":                  1,
	})
	if !maps.Equal(attempts, want) {
		t.Errorf("resilience.attempt.duration counts (no URL path anywhere):\ngot  %v\nwant %v", attempts, want)
	}
}

func TestMarkResendsOutsideTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	h := telemetrytest.New(t)
	conns := http.DefaultTransport.(*http.Transport).Clone()
	defer conns.CloseIdleConnections()
	c := &http.Client{Transport: otelhttp.NewTransport(resiliencehttp.MarkResends(conns),
		otelhttp.WithTracerProvider(h.TracerProvider), otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()))}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, s := range h.Spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "http.request.resend_count" {
				t.Errorf("a first attempt must not carry http.request.resend_count, got %v", a.Value.String())
			}
		}
	}
}
