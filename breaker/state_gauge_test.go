package breaker_test

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
)

// TestTelemetryStateGaugeReportsEveryState checks that a breaker reports
// each of the three states at every collection, 1 for its current state and
// 0 for the others, so that each state's series is continuous through
// open/half-open cycles (a series that is not observed goes stale in
// Prometheus while another one carries on).
func TestTelemetryStateGaugeReportsEveryState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := breaker.New(breaker.WithName("db"), breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Second),
			breaker.WithMeterProvider(h.MeterProvider))
		defer runtime.KeepAlive(b) // its gauge goes with it
		ctx := callTo("db.internal:5432")
		fail := func(context.Context) error { return errors.New("down") }
		want := func(closed, open, halfOpen int64) map[string]int64 {
			return map[string]int64{
				"resilience.breaker.state=closed resilience.name=db":    closed,
				"resilience.breaker.state=open resilience.name=db":      open,
				"resilience.breaker.state=half_open resilience.name=db": halfOpen,
			}
		}
		check := func(step string, w map[string]int64) {
			t.Helper()
			got := telemetrytest.Points(t, h.Collect(t), "resilience.breaker.state", "{breaker}")
			if !maps.Equal(got, w) {
				t.Errorf("%s: resilience.breaker.state:\ngot  %v\nwant %v", step, got, w)
			}
		}
		check("new", want(1, 0, 0))
		b.Do(ctx, fail)
		for cycle := range 3 {
			check("open", want(0, 1, 0))
			time.Sleep(time.Second + time.Millisecond)
			if st := b.State(); st != breaker.HalfOpen {
				t.Fatalf("cycle %d: state %v, want half-open", cycle, st)
			}
			check("half-open", want(0, 0, 1))
			b.Do(ctx, fail) // the probe fails: open again
		}
		time.Sleep(time.Second + time.Millisecond)
		if err := b.Do(ctx, func(context.Context) error { return nil }); err != nil {
			t.Fatalf("probe: %v", err)
		}
		check("closed again", want(1, 0, 0))
	})
}
