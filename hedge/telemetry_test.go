package hedge_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

const callAttrs = "http.request.method=GET server.address=api server.port=443"

func TestTelemetrySentWonCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		p := hedge.New(hedge.WithName("api"), hedge.WithDelay(50*ms), hedge.WithMaxHedges(2),
			hedge.WithMeterProvider(h.MeterProvider), hedge.WithTracerProvider(h.TracerProvider))
		ctx, span := h.Span(idempotent())
		// The first attempt hangs, the second fails at once, the third wins.
		r := newRecorder(map[int]step{1: {after: time.Second}, 2: {after: 5 * ms, err: errFlaky}, 3: {after: 10 * ms}})
		err := p.Do(ctx, r.op)
		span.End()
		if err != nil {
			t.Fatal(err)
		}
		ms := h.Collect(t)
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		want := telemetrytest.Want(map[string]int64{
			callAttrs + " resilience.event=sent resilience.name=api resilience.policy=hedge":      2,
			callAttrs + " resilience.event=won resilience.name=api resilience.policy=hedge":       1,
			callAttrs + " resilience.event=cancelled resilience.name=api resilience.policy=hedge": 1,
		})
		if !maps.Equal(events, want) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
		}
		attempts := telemetrytest.Counts(t, ms, "resilience.attempt.duration", "s")
		wantAttempts := telemetrytest.Want(map[string]uint64{
			callAttrs + " error.type=canceled resilience.attempt=1 resilience.name=api resilience.outcome=canceled":   1,
			callAttrs + " error.type=transient resilience.attempt=2 resilience.name=api resilience.outcome=transient": 1,
			callAttrs + " resilience.attempt=3 resilience.name=api resilience.outcome=success":                        1,
		})
		if !maps.Equal(attempts, wantAttempts) {
			t.Errorf("resilience.attempt.duration:\ngot  %v\nwant %v", attempts, wantAttempts)
		}
		evs := h.Events(t, "caller")
		wantEvs := telemetrytest.WantEvents(
			telemetrytest.Ev("resilience.hedge.sent", "resilience.attempt=2 resilience.name=api resilience.reason=delay"),
			telemetrytest.Ev("resilience.hedge.sent", "resilience.attempt=3 resilience.name=api resilience.reason=failure"),
			telemetrytest.Ev("resilience.hedge.cancelled", "resilience.attempt=1 resilience.name=api"),
			telemetrytest.Ev("resilience.hedge.won", "resilience.attempt=3 resilience.name=api"),
		)
		if !slices.Equal(evs, wantEvs) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, wantEvs)
		}
	})
}

func TestTelemetryBudgetExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := budget.New(budget.WithCapacity(5), budget.WithCost(5), budget.WithMeterProvider(h.MeterProvider))
		b.TryWithdraw()
		p := hedge.New(hedge.WithBudget(b), hedge.WithMeterProvider(h.MeterProvider), hedge.WithTracerProvider(h.TracerProvider))
		ctx, span := h.Span(idempotent())
		err := p.Do(ctx, func(context.Context) error { return errFlaky })
		span.End()
		if !errors.Is(err, budget.ErrExhausted) {
			t.Fatalf("got %v, want the budget's reason", err)
		}
		ms := h.Collect(t)
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		want := telemetrytest.Want(map[string]int64{callAttrs + " resilience.event=budget_exhausted resilience.policy=hedge": 1})
		if !maps.Equal(events, want) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
		}
		if tokens := telemetrytest.Points(t, ms, "resilience.budget.tokens", "{token}"); !maps.Equal(tokens, map[string]int64{"": 0}) {
			t.Errorf("resilience.budget.tokens: got %v, want 0", tokens)
		}
		evs := h.Events(t, "caller")
		wantEvs := telemetrytest.WantEvents(telemetrytest.Ev("resilience.hedge.budget_exhausted", "resilience.attempt=1 resilience.reason=budget"))
		if !slices.Equal(evs, wantEvs) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, wantEvs)
		}
	})
}
