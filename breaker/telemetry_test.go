package breaker_test

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
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

func callTo(target string) context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: target, Method: "GET", Idempotent: true})
}

func TestTelemetryStateChangesAndRejections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := breaker.New(breaker.WithName("db"), breaker.WithConsecutiveFailures(2), breaker.WithOpenDuration(time.Second),
			breaker.WithMeterProvider(h.MeterProvider), breaker.WithTracerProvider(h.TracerProvider))
		defer runtime.KeepAlive(b) // its gauge goes with it
		ctx, span := h.Span(callTo("db.internal:5432"))
		fail := func(context.Context) error { return errors.New("down") }
		ok := func(context.Context) error { return nil }
		b.Do(ctx, fail)
		b.Do(ctx, fail)
		if err := b.Do(ctx, ok); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("got %v, want ErrOpen", err)
		}

		ms := h.Collect(t)
		state := telemetrytest.Points(t, ms, "resilience.breaker.state", "{breaker}")
		// Three series per breaker: 1 for its current state, 0 for the
		// others.
		wantState := telemetrytest.Want(map[string]int64{
			"resilience.breaker.state=closed resilience.name=db":    0,
			"resilience.breaker.state=open resilience.name=db":      1,
			"resilience.breaker.state=half_open resilience.name=db": 0,
		})
		if !maps.Equal(state, wantState) {
			t.Errorf("resilience.breaker.state while open:\ngot  %v\nwant %v", state, wantState)
		}

		time.Sleep(time.Second + time.Millisecond)
		if err := b.Do(ctx, ok); err != nil {
			t.Fatalf("probe: %v", err)
		}
		span.End()

		ms = h.Collect(t)
		const call = " http.request.method=GET server.address=db.internal server.port=5432 resilience.name=db resilience.policy=breaker"
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		wantEvents := telemetrytest.Want(map[string]int64{
			"resilience.event=opened" + call:      1,
			"resilience.event=rejected" + call:    1,
			"resilience.event=half_opened" + call: 1,
			"resilience.event=closed" + call:      1,
		})
		if !maps.Equal(events, wantEvents) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, wantEvents)
		}
		if got := telemetrytest.Points(t, ms, "resilience.breaker.state", "{breaker}")["resilience.breaker.state=closed resilience.name=db"]; got != 1 {
			t.Errorf("closed after the probe: got %d, want 1", got)
		}

		evs := h.Events(t, "caller")
		want := telemetrytest.WantEvents(
			telemetrytest.Ev("resilience.breaker.opened", "resilience.breaker.from=closed resilience.breaker.state=open resilience.name=db"),
			telemetrytest.Ev("resilience.breaker.rejected", "resilience.breaker.state=open resilience.name=db resilience.retry_in=1.001"),
			telemetrytest.Ev("resilience.breaker.half_opened", "resilience.breaker.from=open resilience.breaker.state=half_open resilience.name=db"),
			telemetrytest.Ev("resilience.breaker.closed", "resilience.breaker.from=half_open resilience.breaker.state=closed resilience.name=db"),
		)
		if !slices.Equal(evs, want) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, want)
		}
	})
}

func TestTelemetryKeyedEvictionDropsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		k := breaker.NewKeyed(breaker.WithName("hosts"), breaker.WithIdleTimeout(time.Minute), breaker.WithMeterProvider(h.MeterProvider))
		defer runtime.KeepAlive(k) // its gauge goes with it
		ok := func(context.Context) error { return nil }
		k.Do(callTo("a.example:443"), ok)
		k.Do(callTo("b.example:8443"), ok)
		state := telemetrytest.Points(t, h.Collect(t), "resilience.breaker.state", "{breaker}")
		// Three series per host, with its port: breakers are keyed by
		// host:port.
		want := hostStates(map[string]string{"a.example server.port=443": "closed", "b.example server.port=8443": "closed"})
		if !maps.Equal(state, want) {
			t.Errorf("before eviction:\ngot  %v\nwant %v", state, want)
		}

		time.Sleep(2 * time.Minute)
		k.Do(callTo("c.example:443"), ok) // notes a and b idle
		time.Sleep(2 * time.Minute)
		k.Do(callTo("c.example:443"), ok)
		k.Do(callTo("d.example:443"), ok) // evicts a and b, idle for too long
		if n := k.Len(); n != 2 {
			t.Fatalf("Len = %d, want 2", n)
		}
		state = telemetrytest.Points(t, h.Collect(t), "resilience.breaker.state", "{breaker}")
		want = hostStates(map[string]string{"c.example server.port=443": "closed", "d.example server.port=443": "closed"})
		if !maps.Equal(state, want) {
			t.Errorf("after eviction, evicted keys must not be reported:\ngot  %v\nwant %v", state, want)
		}
	})
}

func TestTelemetryCustomKeysAreNotAttributes(t *testing.T) {
	h := telemetrytest.New(t)
	type tenantKey struct{}
	k := breaker.NewKeyed(breaker.WithConsecutiveFailures(1), breaker.WithMeterProvider(h.MeterProvider),
		breaker.WithKey(func(ctx context.Context) string { s, _ := ctx.Value(tenantKey{}).(string); return s }))
	defer runtime.KeepAlive(k) // its gauge goes with it
	for _, tenant := range []string{"t1", "t2", "t3"} {
		ctx := context.WithValue(context.Background(), tenantKey{}, tenant)
		k.Do(ctx, func(context.Context) error {
			if tenant == "t2" {
				return errors.New("down")
			}
			return nil
		})
	}
	state := telemetrytest.Points(t, h.Collect(t), "resilience.breaker.state", "{breaker}")
	want := map[string]int64{
		"resilience.breaker.state=closed":    2,
		"resilience.breaker.state=open":      1,
		"resilience.breaker.state=half_open": 0,
	}
	if !maps.Equal(state, want) {
		t.Errorf("custom keys: want counts per state, no key:\ngot  %v\nwant %v", state, want)
	}
}

// hostStates returns the points of resilience.breaker.state for breakers
// named "hosts" keyed by target, from each host's ("host server.port=p")
// state: 1 for that state, 0 for the other two.
func hostStates(hosts map[string]string) map[string]int64 {
	m := make(map[string]int64)
	for host, cur := range hosts {
		for _, st := range []string{"closed", "open", "half_open"} {
			var v int64
			if st == cur {
				v = 1
			}
			m["resilience.breaker.state="+st+" resilience.name=hosts server.address="+host] = v
		}
	}
	return telemetrytest.Want(m)
}
