package adaptive_test

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

func TestTelemetryLimitRejectionsAndWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		k := adaptive.NewKeyed(adaptive.WithName("api"), adaptive.WithLimits(1, 1), adaptive.WithQueue(1, time.Second),
			adaptive.WithMeterProvider(h.MeterProvider), adaptive.WithTracerProvider(h.TracerProvider))
		defer runtime.KeepAlive(k) // its gauge goes with it
		ctx, span := h.Span(callTo("api.example.com:443"))
		ctx = resilience.WithCall(ctx, resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true})
		ok := func(context.Context) error { return nil }

		// One call waits 300ms in the queue; one finds the queue full;
		// one waits for nothing.
		release := holdSlot(t, ctx, k)
		time.AfterFunc(300*time.Millisecond, release)
		go k.Do(ctx, ok)
		synctest.Wait()
		if err := k.Do(ctx, ok); !errors.Is(err, adaptive.ErrLimited) {
			t.Fatalf("with the queue full: got %v, want ErrLimited", err)
		}
		time.Sleep(400 * time.Millisecond)
		release = holdSlot(t, ctx, k)
		if err := k.Do(ctx, ok); !errors.Is(err, adaptive.ErrLimited) {
			t.Fatalf("after the maximum wait: got %v, want ErrLimited", err)
		}
		release()
		k.Do(callTo("b.example:80"), ok)
		span.End()

		ms := h.Collect(t)
		limits := telemetrytest.Points(t, ms, "resilience.adaptive.limit", "{call}")
		want := map[string]int64{
			"resilience.name=api server.address=api.example.com server.port=443": 1,
			"resilience.name=api server.address=b.example server.port=80":        1,
		}
		if !maps.Equal(limits, want) {
			t.Errorf("resilience.adaptive.limit:\ngot  %v\nwant %v", limits, want)
		}
		const callKV = " http.request.method=GET server.address=api.example.com server.port=443 resilience.name=api"
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		wantEvents := telemetrytest.Want(map[string]int64{
			"resilience.event=rejected resilience.policy=adaptive resilience.reason=queue_full" + callKV:    1,
			"resilience.event=rejected resilience.policy=adaptive resilience.reason=queue_timeout" + callKV: 1,
		})
		if !maps.Equal(events, wantEvents) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, wantEvents)
		}
		waits := telemetrytest.Counts(t, ms, "resilience.adaptive.wait.duration", "s")
		if want := telemetrytest.Want(map[string]uint64{callKV[1:]: 1}); !maps.Equal(waits, want) {
			t.Errorf("resilience.adaptive.wait.duration counts:\ngot  %v\nwant %v", waits, want)
		}
		if sum := telemetrytest.Histogram(t, ms["resilience.adaptive.wait.duration"]).DataPoints[0].Sum; sum != 0.3 {
			t.Errorf("wait recorded %vs, want 0.3s", sum)
		}
		evs := h.Events(t, "caller")
		wantEvs := telemetrytest.WantEvents(
			telemetrytest.Ev("resilience.adaptive.rejected", "resilience.limit=1 resilience.name=api resilience.reason=queue_full"),
			telemetrytest.Ev("resilience.adaptive.rejected", "resilience.limit=1 resilience.name=api resilience.reason=queue_timeout"),
		)
		if !slices.Equal(evs, wantEvs) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, wantEvs)
		}
	})
}

// The gauge follows the limit, and without server addresses reports the
// sum over hosts.
func TestTelemetryLimitFollowsAndSums(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		k := adaptive.NewKeyed(adaptive.WithoutServerAddress(), adaptive.WithInitialLimit(10), adaptive.WithMeterProvider(h.MeterProvider))
		defer runtime.KeepAlive(k)
		ok := func(context.Context) error { return nil }
		k.Do(callTo("a.example:443"), ok)
		k.Do(callTo("b.example:443"), ok)
		got := telemetrytest.Points(t, h.Collect(t), "resilience.adaptive.limit", "{call}")
		if want := map[string]int64{"": 20}; !maps.Equal(got, want) {
			t.Errorf("summed: got %v, want %v", got, want)
		}

		// A queue at the limit cuts it; the gauge says so.
		h = telemetrytest.New(t)
		u := newUpstream(1, 20*time.Millisecond)
		l := adaptive.New(adaptive.WithMeterProvider(h.MeterProvider))
		defer runtime.KeepAlive(l)
		load(l, u, 200, 2*time.Second, 3*time.Second, nil)
		points := telemetrytest.Points(t, h.Collect(t), "resilience.adaptive.limit", "{call}")
		if n := points[""]; n != int64(l.Limit()) || n >= adaptive.DefaultInitialLimit {
			t.Errorf("after an overload: gauge %d, limit %d; want the limit, cut below %d", n, l.Limit(), adaptive.DefaultInitialLimit)
		}
	})
}
