package retry_test

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/retry"
)

// attemptSum returns the number and the sum of the observations of
// resilience.attempt.duration.
func attemptSum(t *testing.T, ms map[string]metricdata.Metrics) (n uint64, sum float64) {
	t.Helper()
	m, ok := ms["resilience.attempt.duration"]
	if !ok {
		return 0, 0
	}
	for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
		n += p.Count
		sum += p.Sum
	}
	return n, sum
}

func idempotentCall() context.Context {
	return resilience.WithCall(context.Background(), resilience.Call{Target: "api.example:443", Method: "GET", Idempotent: true})
}

// TestAttemptDurationSkipsRefusedAttempts checks that an attempt an open
// breaker turned away, never sent, is not an observation of
// resilience.attempt.duration: the breaker's rejected events count it.
func TestAttemptDurationSkipsRefusedAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		r := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(10*time.Millisecond, time.Second), retry.WithMeterProvider(h.MeterProvider))
		b := breaker.New(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Minute), breaker.WithMeterProvider(h.MeterProvider))
		defer runtime.KeepAlive(b)
		p := resilience.Chain(r, b)
		fail := func(context.Context) error { return errors.New("down") }
		// The first attempt fails and opens the breaker; the retry's second
		// attempt is refused. The next calls are refused at once.
		for range 5 {
			p.Do(idempotentCall(), fail)
		}
		ms := h.Collect(t)
		counts := telemetrytest.Counts(t, ms, "resilience.attempt.duration", "s")
		want := telemetrytest.Want(map[string]uint64{
			"error.type=transient http.request.method=GET resilience.attempt=1 resilience.outcome=transient server.address=api.example server.port=443": 1,
		})
		if !maps.Equal(counts, want) {
			t.Errorf("resilience.attempt.duration: got %v, want only the attempt that was sent: %v", counts, want)
		}
		events := telemetrytest.Points(t, ms, "resilience.events", "{event}")
		if got := events["http.request.method=GET resilience.event=rejected resilience.policy=breaker server.address=api.example server.port=443"]; got != 5 {
			t.Errorf("breaker rejected events: got %d, want 5 (the refusals are counted there)", got)
		}
	})
}

// TestAttemptDurationExcludesGateWait checks that the time a call was held
// at a closed pushback gate is not part of its attempt's duration, which is
// the time the dependency had it: the gate's wait histogram times it.
func TestAttemptDurationExcludesGateWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		r := retry.New(retry.WithMaxAttempts(3), retry.WithBackoff(10*time.Millisecond, 5*time.Second), retry.WithMeterProvider(h.MeterProvider))
		g := pushback.New(pushback.WithReleaseSpread(0), pushback.WithMeterProvider(h.MeterProvider))
		p := resilience.Chain(r, g)
		var (
			mu    sync.Mutex
			first = true
		)
		op := func(context.Context) error {
			mu.Lock()
			f := first
			first = false
			mu.Unlock()
			if f {
				// Closes the gate for a second: A's retry waits for it,
				// B, started meanwhile, is held.
				return resilience.MarkRetryAfter(errors.New("busy"), resilience.KindThrottled, time.Second)
			}
			time.Sleep(100 * time.Millisecond) // the dependency's time
			return nil
		}
		var wg sync.WaitGroup
		wg.Go(func() { // A
			if err := p.Do(idempotentCall(), op); err != nil {
				t.Errorf("A: %v", err)
			}
		})
		wg.Go(func() { // B
			time.Sleep(500 * time.Millisecond)
			if err := p.Do(idempotentCall(), op); err != nil {
				t.Errorf("B: %v", err)
			}
		})
		wg.Wait()
		ms := h.Collect(t)
		// A's first attempt took no time, A's second and B's only one
		// 100ms each, whichever of them went first as the gate's probe.
		n, sum := attemptSum(t, ms)
		if n != 3 || sum < 0.199 || sum > 0.201 {
			t.Errorf("resilience.attempt.duration: %d observations summing to %.3fs, want 3 summing to 0.200s (the time at the gate is not the dependency's)", n, sum)
		}
		waits := telemetrytest.Counts(t, ms, "resilience.pushback.wait.duration", "s")
		var held uint64
		for _, c := range waits {
			held += c
		}
		if held == 0 {
			t.Errorf("resilience.pushback.wait.duration: no observation, want the held calls timed there")
		}
	})
}

// TestAttemptDurationExcludesBulkheadWait checks that the time a call
// waited for a bulkhead slot is not part of its attempt's duration, and that
// a call the full bulkhead turned away is not an attempt.
func TestAttemptDurationExcludesBulkheadWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		r := retry.New(retry.WithMaxAttempts(1), retry.WithMeterProvider(h.MeterProvider))
		b := bulkhead.New(1, bulkhead.WithMaxWait(3*time.Second), bulkhead.WithMeterProvider(h.MeterProvider))
		defer runtime.KeepAlive(b)
		p := resilience.Chain(r, b)
		var wg sync.WaitGroup
		wg.Go(func() { // A holds the slot for 2s
			p.Do(idempotentCall(), func(context.Context) error { time.Sleep(2 * time.Second); return nil })
		})
		wg.Go(func() { // B waits 2s for it, then holds it for 1.5s
			time.Sleep(time.Millisecond)
			p.Do(idempotentCall(), func(context.Context) error { time.Sleep(1500 * time.Millisecond); return nil })
		})
		wg.Go(func() { // C, behind B, waits 3s in vain: turned away, never sent
			time.Sleep(2 * time.Millisecond)
			err := p.Do(idempotentCall(), func(context.Context) error { t.Error("C was let through"); return nil })
			if !errors.Is(err, bulkhead.ErrFull) {
				t.Errorf("C: got %v, want ErrFull", err)
			}
		})
		wg.Wait()
		n, sum := attemptSum(t, h.Collect(t))
		if n != 2 || sum < 3.499 || sum > 3.501 {
			t.Errorf("resilience.attempt.duration: %d observations summing to %.3fs, want 2 summing to 3.500s (the wait for the slot is the bulkhead's, and C was never sent)", n, sum)
		}
	})
}
