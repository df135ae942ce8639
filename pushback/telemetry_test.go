package pushback_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/pushback"
)

const callAttrs = "http.request.method=GET server.address=a server.port=443"

func TestTelemetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		g := pushback.New(pushback.WithName("api"), exact,
			pushback.WithMeterProvider(h.MeterProvider), pushback.WithTracerProvider(h.TracerProvider))

		// closed: a 429 asking for 2s.
		ctx, cancel := call("a:443", 0)
		defer cancel()
		sctx, span := h.Span(ctx)
		g.Do(sctx, func(context.Context) error { return throttled(2 * time.Second) })
		span.End()

		// rejected: a caller whose deadline ends before the gate reopens.
		short, cancelShort := call("a:443", time.Second)
		defer cancelShort()
		g.Do(short, func(context.Context) error { return nil })

		// held for 2s, then the probe, whose success reopens the gate.
		g.Do(ctx, func(context.Context) error { return nil })

		ms := h.Collect(t)
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		base := callAttrs + " resilience.name=api resilience.policy=pushback resilience.event="
		want := telemetrytest.Want(map[string]int64{
			base + "closed":   1,
			base + "rejected": 1,
			base + "held":     1,
			base + "reopened": 1,
		})
		if !maps.Equal(events, want) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
		}
		waits := telemetrytest.Counts(t, ms, "resilience.pushback.wait.duration", "s")
		if want := telemetrytest.Want(map[string]uint64{callAttrs + " resilience.name=api": 1}); !maps.Equal(waits, want) {
			t.Errorf("resilience.pushback.wait.duration counts:\ngot  %v\nwant %v", waits, want)
		}
		if m := ms["resilience.pushback.wait.duration"]; m.Name != "" {
			if p := telemetrytest.Histogram(t, m).DataPoints; len(p) != 1 || p[0].Sum != 2 {
				t.Errorf("recorded waits %v, want one of 2s", p)
			}
		}
		evs := h.Events(t, "caller")
		wantEvs := telemetrytest.WantEvents(telemetrytest.Ev("resilience.pushback.closed", "resilience.name=api resilience.retry_in=2"))
		if !slices.Equal(evs, wantEvs) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, wantEvs)
		}
	})
}

func TestTelemetrySpanEventsOfHeldAndRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		g := pushback.New(exact, pushback.WithMeterProvider(h.MeterProvider), pushback.WithTracerProvider(h.TracerProvider))
		closeGate(t, g, "a:443", 2*time.Second)
		short, cancelShort := call("a:443", time.Second)
		defer cancelShort()
		sctx, span := h.Span(short)
		err := g.Do(sctx, func(context.Context) error { return nil })
		if !errors.Is(err, pushback.ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
		long, cancelLong := call("a:443", 5*time.Second)
		defer cancelLong()
		span.End()
		lctx, lspan := h.Span(long)
		g.Do(lctx, func(context.Context) error { return nil })
		lspan.End()
		evs := h.Events(t, "caller")
		want := telemetrytest.WantEvents(
			telemetrytest.Ev("resilience.pushback.rejected", "resilience.retry_in=2"),
			telemetrytest.Ev("resilience.pushback.held", "resilience.retry_in=2"),
			telemetrytest.Ev("resilience.pushback.reopened", ""),
		)
		if !slices.Equal(evs, want) {
			t.Errorf("span events of the rejected call, then the held one:\ngot  %v\nwant %v", evs, want)
		}
	})
}
