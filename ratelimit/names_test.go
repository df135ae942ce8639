package ratelimit_test

import (
	"context"
	"maps"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/ratelimit"
)

// TestTelemetryClientAndServerNamesDiffer checks that a client's rate
// limit and a server's report their decisions under different policy names
// (and so span event names), even when both are named alike and the
// client's leaves server.address off: a dashboard must tell a service
// throttling itself from a service throttling its clients.
func TestTelemetryClientAndServerNamesDiffer(t *testing.T) {
	h := telemetrytest.New(t)
	client := ratelimit.New(1, 1, ratelimit.WithName("api"), ratelimit.WithoutServerAddress(),
		ratelimit.WithMeterProvider(h.MeterProvider), ratelimit.WithTracerProvider(h.TracerProvider))
	server := ratelimit.Middleware(ratelimit.NewLocal(ratelimit.Quota{Name: "q", Limit: 1, Window: time.Hour}), nil,
		ratelimit.WithName("api"), ratelimit.WithMeterProvider(h.MeterProvider), ratelimit.WithTracerProvider(h.TracerProvider))(ok)

	ctx, span := h.Span(resilience.WithCall(context.Background(), resilience.Call{Target: "api.example:443", Method: "GET", Idempotent: true}))
	for range 2 {
		client.Do(ctx, func(context.Context) error { return nil })
		server.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, "GET", "/", nil))
	}
	span.End()

	got := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	want := map[string]int64{
		"http.request.method=GET resilience.event=rejected resilience.name=api resilience.policy=ratelimit":        1,
		"http.request.method=GET resilience.event=allowed resilience.name=api resilience.policy=ratelimit_server":  1,
		"http.request.method=GET resilience.event=rejected resilience.name=api resilience.policy=ratelimit_server": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("resilience.events:\ngot  %v\nwant %v", got, want)
	}
	var names []string
	for _, e := range h.Events(t, "caller") {
		names = append(names, e.Name)
	}
	wantNames := []string{"resilience.ratelimit_server.allowed", "resilience.ratelimit.rejected", "resilience.ratelimit_server.rejected"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("span events %v, want %v", names, wantNames)
	}
}
