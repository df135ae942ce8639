package timeout_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/timeout"
)

func TestTelemetryExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		p := timeout.New(time.Second, timeout.WithName("attempt"),
			timeout.WithMeterProvider(h.MeterProvider), timeout.WithTracerProvider(h.TracerProvider))
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "[::1]:8443", Method: "/pkg.Service/Get", Idempotent: true})
		ctx, span := h.Span(ctx)
		p.Do(ctx, waitDone)
		p.Do(ctx, func(context.Context) error { return nil }) // in time: nothing to report
		span.End()

		events := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
		want := telemetrytest.Want(map[string]int64{
			"resilience.event=expired resilience.name=attempt resilience.policy=timeout rpc.method=pkg.Service/Get server.address=::1 server.port=8443": 1,
		})
		if !maps.Equal(events, want) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
		}
		evs := h.Events(t, "caller")
		wantEvs := telemetrytest.WantEvents(telemetrytest.Ev("resilience.timeout.expired", "error.type=timeout resilience.name=attempt resilience.timeout=1"))
		if !slices.Equal(evs, wantEvs) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, wantEvs)
		}
	})
}
