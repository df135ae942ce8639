package bulkhead_test

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
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

func callTo(target string) context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: target, Method: "GET", Idempotent: true})
}

func TestTelemetryInFlightWaitAndRejection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := bulkhead.New(1, bulkhead.WithName("pool"), bulkhead.WithMaxWait(time.Second),
			bulkhead.WithMeterProvider(h.MeterProvider), bulkhead.WithTracerProvider(h.TracerProvider))
		defer runtime.KeepAlive(b) // its gauge goes with it
		ctx, span := h.Span(callTo("api.example.com:443"))

		// A result held past the operation keeps its slot, and counts in
		// flight, until it is done.
		call := resilience.WithCall(ctx, resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true})
		var done func(error)
		b.Do(call, func(ctx context.Context) error {
			done = resilience.Hold(ctx, nil)
			return nil
		})
		inFlight := telemetrytest.Points(t, h.Collect(t), "resilience.bulkhead.in_flight", "{call}")
		if want := map[string]int64{"resilience.name=pool": 1}; !maps.Equal(inFlight, want) {
			t.Errorf("in flight while held: got %v, want %v", inFlight, want)
		}

		// A second call waits 300ms for the slot, a third gives up.
		time.AfterFunc(300*time.Millisecond, func() { done(nil) })
		if err := b.Do(ctx, func(context.Context) error { time.Sleep(2 * time.Second); return nil }); err != nil {
			t.Fatal(err)
		}
		go b.Do(ctx, func(context.Context) error { time.Sleep(5 * time.Second); return nil })
		synctest.Wait()
		if err := b.Do(ctx, func(context.Context) error { return nil }); !errors.Is(err, bulkhead.ErrFull) {
			t.Fatalf("got %v, want ErrFull", err)
		}
		synctest.Wait()
		time.Sleep(5 * time.Second)
		span.End()

		ms := h.Collect(t)
		const callKV = " http.request.method=GET server.address=api.example.com server.port=443 resilience.name=pool"
		if got, want := telemetrytest.Points(t, ms, "resilience.bulkhead.in_flight", "{call}"), map[string]int64{"resilience.name=pool": 0}; !maps.Equal(got, want) {
			t.Errorf("in flight at the end: got %v, want %v", got, want)
		}
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		if want := telemetrytest.Want(map[string]int64{"resilience.event=rejected resilience.policy=bulkhead" + callKV: 1}); !maps.Equal(events, want) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
		}
		waits := telemetrytest.Counts(t, ms, "resilience.bulkhead.wait.duration", "s")
		if want := telemetrytest.Want(map[string]uint64{callKV[1:]: 1}); !maps.Equal(waits, want) {
			t.Errorf("resilience.bulkhead.wait.duration counts:\ngot  %v\nwant %v", waits, want)
		}
		if sum := telemetrytest.Histogram(t, ms["resilience.bulkhead.wait.duration"]).DataPoints[0].Sum; sum != 0.3 {
			t.Errorf("wait recorded %vs, want 0.3s", sum)
		}
		evs := h.Events(t, "caller")
		want := telemetrytest.WantEvents(telemetrytest.Ev("resilience.bulkhead.rejected", "resilience.limit=1 resilience.name=pool resilience.wait=1"))
		if !slices.Equal(evs, want) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, want)
		}
	})
}

func TestTelemetryKeyedEvictionDropsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		k := bulkhead.NewKeyed(2, bulkhead.WithIdleTimeout(time.Minute), bulkhead.WithMeterProvider(h.MeterProvider))
		defer runtime.KeepAlive(k) // its gauge goes with it
		var done func(error)
		k.Do(callTo("a.example:443"), func(ctx context.Context) error {
			done = resilience.Hold(ctx, nil)
			return nil
		})
		k.Do(callTo("b.example:443"), func(context.Context) error { return nil })
		got := telemetrytest.Points(t, h.Collect(t), "resilience.bulkhead.in_flight", "{call}")
		want := map[string]int64{"server.address=a.example server.port=443": 1, "server.address=b.example server.port=443": 0}
		if !maps.Equal(got, want) {
			t.Errorf("before eviction: got %v, want %v", got, want)
		}
		done(nil)
		// Idle keys go at the second sweep an idle timeout apart.
		time.Sleep(2 * time.Minute)
		k.Do(callTo("c.example:443"), func(context.Context) error { return nil })
		time.Sleep(2 * time.Minute)
		k.Do(callTo("c.example:443"), func(context.Context) error { return nil })
		k.Do(callTo("d.example:443"), func(context.Context) error { return nil })
		got = telemetrytest.Points(t, h.Collect(t), "resilience.bulkhead.in_flight", "{call}")
		want = map[string]int64{"server.address=c.example server.port=443": 0, "server.address=d.example server.port=443": 0}
		if !maps.Equal(got, want) {
			t.Errorf("after eviction, evicted keys must not be reported: got %v, want %v", got, want)
		}
	})
}

// TestTelemetryLimitGauge checks resilience.bulkhead.limit, the slots
// beside resilience.bulkhead.in_flight, so that a dashboard shows
// saturation without a constant: per bulkhead, per host when keyed by
// target, summed over keys otherwise (as in_flight is).
func TestTelemetryLimitGauge(t *testing.T) {
	h := telemetrytest.New(t)
	b := bulkhead.New(4, bulkhead.WithName("pool"), bulkhead.WithMeterProvider(h.MeterProvider))
	k := bulkhead.NewKeyed(3, bulkhead.WithName("hosts"), bulkhead.WithMeterProvider(h.MeterProvider))
	s := bulkhead.NewKeyed(2, bulkhead.WithName("summed"), bulkhead.WithoutServerAddress(), bulkhead.WithMeterProvider(h.MeterProvider))
	defer runtime.KeepAlive(b) // their gauges go with them
	defer runtime.KeepAlive(k)
	defer runtime.KeepAlive(s)
	ok := func(context.Context) error { return nil }
	for _, target := range []string{"a.example:443", "b.example:8443"} {
		k.Do(callTo(target), ok)
		s.Do(callTo(target), ok)
	}
	got := telemetrytest.Points(t, h.Collect(t), "resilience.bulkhead.limit", "{call}")
	want := telemetrytest.Want(map[string]int64{
		"resilience.name=pool": 4,
		"resilience.name=hosts server.address=a.example server.port=443":  3,
		"resilience.name=hosts server.address=b.example server.port=8443": 3,
		"resilience.name=summed": 4,
	})
	if !maps.Equal(got, want) {
		t.Errorf("resilience.bulkhead.limit:\ngot  %v\nwant %v", got, want)
	}
}
