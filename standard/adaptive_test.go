package standard_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/standard"
)

// limitGauge returns the series of resilience.adaptive.limit after one
// successful call to api:443 through the pipeline built with opts.
func limitGauge(t *testing.T, opts ...standard.Option) map[string]int64 {
	t.Helper()
	h := telemetrytest.New(t)
	p, err := standard.New(append([]standard.Option{standard.WithMeterProvider(h.MeterProvider)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "api:443", Idempotent: true})
	if err := p.Do(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ms := h.Collect(t)
	runtime.KeepAlive(p) // the gauge reports a limiter still in use
	if _, ok := ms["resilience.adaptive.limit"]; !ok {
		return nil
	}
	return telemetrytest.Points(t, ms, "resilience.adaptive.limit", "{call}")
}

func TestAdaptiveConcurrencyOffByDefault(t *testing.T) {
	const host = "server.address=api server.port=443"
	for name, opts := range map[string][]standard.Option{
		"default": nil,
		"undone":  {standard.WithAdaptiveConcurrency(), standard.WithoutAdaptiveConcurrency()},
	} {
		if got := limitGauge(t, opts...); got != nil {
			t.Errorf("%s: resilience.adaptive.limit: got %v, want no limiter", name, got)
		}
	}
	if got := limitGauge(t, standard.WithoutAdaptiveConcurrency(), standard.WithAdaptiveConcurrency()); len(got) != 1 || got[host] != adaptive.DefaultInitialLimit {
		t.Errorf("WithAdaptiveConcurrency: resilience.adaptive.limit: got %v, want %d for %s", got, adaptive.DefaultInitialLimit, host)
	}
}

func TestAdaptiveConcurrencyInvalid(t *testing.T) {
	for name, o := range map[string]struct {
		opt  standard.Option
		want string
	}{
		"bad limits": {standard.WithAdaptiveConcurrency(adaptive.WithLimits(0, 10)), "adaptive: WithLimits: min must be at least 1, got 0"},
		"nil option": {standard.WithAdaptiveConcurrency(adaptive.WithName("x"), nil), "standard: WithAdaptiveConcurrency: option 1 is nil"},
		"bad queue":  {standard.WithAdaptiveConcurrency(adaptive.WithQueue(0, time.Second)), "adaptive: WithQueue"},
	} {
		p, err := standard.New(standard.WithName("users"), o.opt)
		if err == nil || p != nil || len(err.Error()) < len(o.want) || err.Error()[:len(o.want)] != o.want {
			t.Errorf("%s: got %v, %v; want error %q", name, p, err, o.want)
		}
	}
}

// TestAdaptiveRejectionNotCounted checks the limiter's place: inside the
// breaker and the pushback gate, neither of which counts the calls it turns
// away, and inside the retry, which does not retry them.
func TestAdaptiveRejectionNotCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes atomic.Int32
		p, err := standard.New(
			standard.WithAdaptiveConcurrency(adaptive.WithLimits(1, 1)),
			standard.WithBreaker(breaker.WithConsecutiveFailures(1),
				breaker.WithOnStateChange(func(string, breaker.State, breaker.State) { changes.Add(1) })),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "api:443", Idempotent: true})
		release := make(chan struct{})
		done := make(chan error)
		go func() {
			done <- p.Do(ctx, func(context.Context) error { <-release; return nil })
		}()
		synctest.Wait() // the first call holds the only slot

		for i := range 30 {
			var ran int
			err := p.Do(ctx, func(context.Context) error { ran++; return nil })
			var le *adaptive.LimitError
			if !errors.Is(err, adaptive.ErrLimited) || !errors.As(err, &le) || le.Target != "api:443" || ran != 0 {
				t.Fatalf("call %d while the slot is taken: got %v after %d runs, want an *adaptive.LimitError for api:443", i, err, ran)
			}
		}
		if n := changes.Load(); n != 0 {
			t.Fatalf("the breaker changed state %d times over calls the limiter turned away, want 0", n)
		}

		// A call turned away fails fast, as one the open breaker refuses:
		// the retry does not wait its backoff to find the host still
		// queueing.
		var attempts atomic.Int32
		start := time.Now()
		err = p.Do(ctx, func(context.Context) error { attempts.Add(1); return nil })
		if !errors.Is(err, adaptive.ErrLimited) || resilience.Classify(err) != resilience.KindRefused || attempts.Load() != 0 || time.Since(start) != 0 {
			t.Fatalf("got %v (%v) after %d attempts and %v, want the LimitError, refused, at once", err, resilience.Classify(err), attempts.Load(), time.Since(start))
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if err := p.Do(ctx, func(context.Context) error { return nil }); err != nil || time.Since(start) != 0 {
			t.Fatalf("next call: %v after %v, want success at once (no gate closed, no breaker opened)", err, time.Since(start))
		}
		if n := changes.Load(); n != 0 {
			t.Fatalf("the breaker changed state %d times, want 0", n)
		}
	})
}

// TestAdaptiveBoundsHedges checks that hedges take slots of the limit: with
// one slot, a slow call gets no hedge beside it.
func TestAdaptiveBoundsHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithHedging(hedge.WithDelay(30*time.Millisecond)),
			standard.WithAdaptiveConcurrency(adaptive.WithLimits(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "api:443", Idempotent: true})
		var running, most atomic.Int32
		err = p.Do(ctx, func(ctx context.Context) error {
			n := running.Add(1)
			defer running.Add(-1)
			if n > most.Load() {
				most.Store(n)
			}
			time.Sleep(200 * time.Millisecond)
			return nil
		})
		if err != nil || most.Load() != 1 {
			t.Fatalf("got %v with %d attempts at once, want success with 1 (the limit)", err, most.Load())
		}
	})
}

// TestAdaptiveNoAllocation checks that the limiter adds no allocation to a
// successful call through the pipeline.
func TestAdaptiveNoAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not the program's under the race detector")
	}
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api:443", Method: "GET", Idempotent: true})
	op := func(context.Context) error { return nil }
	allocs := func(opts ...standard.Option) float64 {
		p, err := standard.New(opts...)
		if err != nil {
			t.Fatal(err)
		}
		p.Do(ctx, op) // the host's parts are made on its first call
		return testing.AllocsPerRun(1000, func() {
			if err := p.Do(ctx, op); err != nil {
				t.Fatal(err)
			}
		})
	}
	without, with := allocs(), allocs(standard.WithAdaptiveConcurrency())
	if with != without {
		t.Fatalf("%v allocations per call with the adaptive limit, %v without: want the same", with, without)
	}
	t.Logf("%v allocations per call, with or without the adaptive limit", with)
}
