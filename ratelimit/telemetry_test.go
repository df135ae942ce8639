package ratelimit_test

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
	"github.com/resilience-go/resilience/ratelimit"
)

func TestTelemetryWaitAndRejection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		// One call per second, waiting up to 1.5s for a token.
		l := ratelimit.NewKeyed(1, 1, ratelimit.WithName("partner"), ratelimit.WithMaxWait(1500*time.Millisecond),
			ratelimit.WithMeterProvider(h.MeterProvider), ratelimit.WithTracerProvider(h.TracerProvider))
		ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "partner.example:443", Method: "POST"})
		ctx, span := h.Span(ctx)
		op := func(context.Context) error { return nil }
		if err := l.Do(ctx, op); err != nil {
			t.Fatal(err)
		}
		// The second call waits 1s for the next token; the third would
		// wait 2s, more than allowed.
		go l.Do(ctx, op)
		synctest.Wait()
		if err := l.Do(ctx, op); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("got %v, want ErrLimited", err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		span.End()

		ms := h.Collect(t)
		const callKV = "http.request.method=POST server.address=partner.example server.port=443 resilience.name=partner"
		waits := telemetrytest.Counts(t, ms, "resilience.ratelimit.wait.duration", "s")
		if want := telemetrytest.Want(map[string]uint64{callKV: 1}); !maps.Equal(waits, want) {
			t.Errorf("resilience.ratelimit.wait.duration counts:\ngot  %v\nwant %v", waits, want)
		}
		if sum := telemetrytest.Histogram(t, ms["resilience.ratelimit.wait.duration"]).DataPoints[0].Sum; sum != 1 {
			t.Errorf("waits sum to %vs, want 1s", sum)
		}
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		if want := telemetrytest.Want(map[string]int64{callKV + " resilience.event=rejected resilience.policy=ratelimit": 1}); !maps.Equal(events, want) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
		}
		evs := h.Events(t, "caller")
		want := telemetrytest.WantEvents(telemetrytest.Ev("resilience.ratelimit.rejected", "resilience.name=partner resilience.retry_in=2"))
		if !slices.Equal(evs, want) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, want)
		}
	})
}
