package throttle_test

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/throttle"
)

func TestTelemetryProbabilityAndRejections(t *testing.T) {
	h := telemetrytest.New(t)
	k := throttle.NewKeyed(throttle.WithName("api"), throttle.WithMaxProbability(0.5),
		throttle.WithMeterProvider(h.MeterProvider), throttle.WithTracerProvider(h.TracerProvider))
	defer runtime.KeepAlive(k) // its gauge goes with it
	ctx, span := h.Span(callTo("api.example.com:443"))
	rejected := 0
	for range 200 {
		if errors.Is(k.Do(ctx, func(context.Context) error { return errThrottled }), throttle.ErrRejected) {
			rejected++
		}
	}
	k.Do(callTo("b.example:80"), func(context.Context) error { return nil })
	span.End()

	ms := h.Collect(t)
	m := ms["resilience.throttle.probability"]
	if m.Unit != "1" {
		t.Errorf("unit %q, want 1", m.Unit)
	}
	got := map[string]float64{}
	g, ok := m.Data.(metricdata.Gauge[float64])
	if !ok {
		t.Fatalf("resilience.throttle.probability: data %T, want a float64 gauge", m.Data)
	}
	for _, p := range g.DataPoints {
		got[telemetrytest.Attrs(p.Attributes)] = p.Value
	}
	want := map[string]float64{
		"resilience.name=api server.address=api.example.com server.port=443": 0.5,
		"resilience.name=api server.address=b.example server.port=80":        0,
	}
	if !maps.Equal(got, want) {
		t.Errorf("resilience.throttle.probability:\ngot  %v\nwant %v", got, want)
	}
	events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
	const callKV = " http.request.method=GET server.address=api.example.com server.port=443 resilience.name=api"
	// Every call refused, from the first: the throttle turns away about
	// half of the calls (the cap) once a few have been refused.
	if want := telemetrytest.Want(map[string]int64{"resilience.event=rejected resilience.policy=throttle" + callKV: int64(rejected)}); !maps.Equal(events, want) || rejected < 50 {
		t.Errorf("resilience.events:\ngot  %v\nwant %v (at least 50)", events, want)
	}
	evs := h.Events(t, "caller")
	if len(evs) != rejected {
		t.Fatalf("%d span events, want %d", len(evs), rejected)
	}
	if want := telemetrytest.WantEvents(telemetrytest.Ev("resilience.throttle.rejected", "resilience.name=api resilience.probability=0.5")); !slices.Contains(evs, want[0]) {
		t.Errorf("span events %v, want one of them %v", evs[:3], want[0])
	}
}
