package retry_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/retry"
)

const callAttrs = "http.request.method=GET server.address=api.example.com server.port=443"

func telemetryCall() context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true})
}

func TestTelemetryRetriesThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		p := retry.New(retry.WithName("api"), retry.WithBackoff(time.Millisecond, time.Millisecond), retry.WithJitter(0),
			retry.WithMeterProvider(h.MeterProvider), retry.WithTracerProvider(h.TracerProvider))
		ctx, span := h.Span(telemetryCall())
		n := 0
		err := p.Do(ctx, func(context.Context) error {
			n++
			if n < 3 {
				time.Sleep(20 * time.Millisecond)
				return errors.New("connection reset")
			}
			return nil
		})
		span.End()
		if err != nil {
			t.Fatal(err)
		}

		ms := h.Collect(t)
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		wantEvents := telemetrytest.Want(map[string]int64{callAttrs + " resilience.event=scheduled resilience.name=api resilience.policy=retry": 2})
		if !maps.Equal(events, wantEvents) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, wantEvents)
		}
		attempts := telemetrytest.Counts(t, ms, "resilience.attempt.duration", "s")
		wantAttempts := telemetrytest.Want(map[string]uint64{
			"error.type=transient " + callAttrs + " resilience.attempt=1 resilience.name=api resilience.outcome=transient": 1,
			"error.type=transient " + callAttrs + " resilience.attempt=2 resilience.name=api resilience.outcome=transient": 1,
			callAttrs + " resilience.attempt=3 resilience.name=api resilience.outcome=success":                             1,
		})
		if !maps.Equal(attempts, wantAttempts) {
			t.Errorf("resilience.attempt.duration counts:\ngot  %v\nwant %v", attempts, wantAttempts)
		}
		// The fake clock makes the failed attempts' durations exact.
		if h := ms["resilience.attempt.duration"]; h.Name != "" {
			var sum float64
			for _, p := range telemetrytest.Histogram(t, h).DataPoints {
				sum += p.Sum
			}
			if sum != 0.04 {
				t.Errorf("sum of attempt durations %vs, want 0.04s", sum)
			}
		}

		evs := h.Events(t, "caller")
		want := telemetrytest.WantEvents(
			telemetrytest.Ev("resilience.retry.scheduled", "error.type=transient resilience.attempt=1 resilience.name=api resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
			telemetrytest.Ev("resilience.retry.scheduled", "error.type=transient resilience.attempt=2 resilience.name=api resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
		)
		if !slices.Equal(evs, want) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, want)
		}
	})
}

func TestTelemetryExhaustedWithPushback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		p := retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(time.Millisecond, time.Second),
			retry.WithMeterProvider(h.MeterProvider), retry.WithTracerProvider(h.TracerProvider))
		ctx, span := h.Span(telemetryCall())
		err := p.Do(ctx, func(context.Context) error {
			return resilience.MarkRetryAfter(errors.New("slow down"), resilience.KindThrottled, 200*time.Millisecond)
		})
		span.End()
		if !errors.Is(err, retry.ErrExhausted) {
			t.Fatalf("got %v, want ErrExhausted", err)
		}
		events := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
		wantEvents := telemetrytest.Want(map[string]int64{
			callAttrs + " resilience.event=scheduled resilience.policy=retry": 1,
			callAttrs + " resilience.event=exhausted resilience.policy=retry": 1,
		})
		if !maps.Equal(events, wantEvents) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, wantEvents)
		}
		evs := h.Events(t, "caller")
		want := telemetrytest.WantEvents(
			telemetrytest.Ev("resilience.retry.scheduled", "error.type=throttled resilience.attempt=1 resilience.outcome=throttled resilience.pushback=true resilience.wait=0.2"),
			telemetrytest.Ev("resilience.retry.exhausted", "error.type=throttled resilience.attempt=2 resilience.outcome=throttled resilience.reason=exhausted"),
		)
		if !slices.Equal(evs, want) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, want)
		}
	})
}

func TestTelemetryNoSpanNoEvents(t *testing.T) {
	// Without a recording span in the context, decisions are still counted
	// and nothing else happens.
	h := telemetrytest.New(t)
	p := retry.New(retry.WithMaxAttempts(2), retry.WithBackoff(time.Millisecond, time.Millisecond),
		retry.WithMeterProvider(h.MeterProvider), retry.WithTracerProvider(h.TracerProvider))
	p.Do(context.Background(), func(context.Context) error { return errors.New("boom") })
	events := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
	want := telemetrytest.Want(map[string]int64{
		"resilience.event=scheduled resilience.policy=retry": 1,
		"resilience.event=exhausted resilience.policy=retry": 1,
	})
	if !maps.Equal(events, want) {
		t.Errorf("outside any call:\ngot  %v\nwant %v", events, want)
	}
	if n := len(h.Spans.Ended()); n != 0 {
		t.Errorf("%d spans ended, want none", n)
	}
}
