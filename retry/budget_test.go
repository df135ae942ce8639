package retry_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/internal/telemetry/telemetrytest"
	"github.com/resilience-go/resilience/retry"
)

// outcomes returns an op that returns the next of errs at each call (nil
// for success), and counts its calls.
func outcomes(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		err := errs[*calls%len(errs)]
		*calls++
		return err
	}
}

func TestBudgetBoundsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := budget.New(budget.WithCapacity(10), budget.WithCost(5), budget.WithReward(1))
		p := retry.New(retry.WithBudget(b), retry.WithBackoff(time.Millisecond, time.Millisecond))
		var attempts []int
		for range 3 {
			calls := 0
			err := p.Do(context.Background(), outcomes(&calls, errFlaky))
			var re *retry.Error
			if !errors.As(err, &re) || re.Reason != retry.ErrBudget || !errors.Is(err, budget.ErrExhausted) || !errors.Is(err, errFlaky) {
				t.Fatalf("got %v, want a *retry.Error for the budget wrapping the last failure", err)
			}
			attempts = append(attempts, calls)
		}
		// 10 tokens pay for two retries, then none.
		if want := []int{3, 1, 1}; !slices.Equal(attempts, want) {
			t.Fatalf("attempts per call %v, want %v", attempts, want)
		}
		want := "retry: gave up after 1 attempt (budget: retry budget exhausted): flaky"
		if got := p.Do(context.Background(), outcomes(new(int), errFlaky)).Error(); got != want {
			t.Errorf("message %q, want %q", got, want)
		}
	})
}

func TestBudgetEarnsAndRefunds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := budget.New(budget.WithCapacity(10), budget.WithCost(5), budget.WithReward(1))
		p := retry.New(retry.WithBudget(b), retry.WithBackoff(time.Millisecond, time.Millisecond))
		calls := 0
		// Fail, fail, succeed: two retries withdrawn (0 left), the
		// successful one refunded (5), the success earned (6).
		if err := p.Do(context.Background(), outcomes(&calls, errFlaky, errFlaky, nil)); err != nil || calls != 3 {
			t.Fatalf("got %d calls and %v, want 3 and success", calls, err)
		}
		if b.Tokens() != 6 {
			t.Fatalf("%d tokens left, want 6", b.Tokens())
		}
		// A first-attempt success earns 1.
		p.Do(context.Background(), outcomes(new(int), nil))
		if b.Tokens() != 7 {
			t.Fatalf("%d tokens left, want 7", b.Tokens())
		}
		// A failure that is not retried costs nothing.
		p.Do(context.Background(), outcomes(new(int), context.Canceled))
		if b.Tokens() != 7 {
			t.Fatalf("%d tokens left after a failure not retried, want 7", b.Tokens())
		}
	})
}

func TestBudgetSharedByPolicies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := budget.New(budget.WithCapacity(5), budget.WithCost(5))
		p1 := retry.New(retry.WithBudget(b), retry.WithBackoff(time.Millisecond, time.Millisecond))
		p2 := retry.New(retry.WithBudget(b), retry.WithBackoff(time.Millisecond, time.Millisecond))
		c1, c2 := 0, 0
		p1.Do(context.Background(), outcomes(&c1, errFlaky, nil))
		// p1's retry succeeded and was refunded; p2 may retry once.
		p2.Do(context.Background(), outcomes(&c2, errFlaky))
		if c1 != 2 || c2 != 2 || b.Tokens() != 0 {
			t.Fatalf("calls %d and %d, %d tokens left; want 2, 2 and 0", c1, c2, b.Tokens())
		}
	})
}

func TestTelemetryBudgetExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := telemetrytest.New(t)
		b := budget.New(budget.WithCapacity(5), budget.WithCost(5))
		p := retry.New(retry.WithBudget(b), retry.WithBackoff(time.Millisecond, time.Millisecond), retry.WithJitter(0),
			retry.WithMeterProvider(h.MeterProvider), retry.WithTracerProvider(h.TracerProvider))
		ctx, span := h.Span(telemetryCall())
		p.Do(ctx, func(context.Context) error { return errors.New("connection reset") })
		span.End()
		events := telemetrytest.Points(t, h.Collect(t), "resilience.events", "{event}")
		want := telemetrytest.Want(map[string]int64{
			callAttrs + " resilience.event=scheduled resilience.policy=retry":        1,
			callAttrs + " resilience.event=budget_exhausted resilience.policy=retry": 1,
		})
		if !maps.Equal(events, want) {
			t.Errorf("resilience.events:\ngot  %v\nwant %v", events, want)
		}
		evs := h.Events(t, "caller")
		wantEvs := telemetrytest.WantEvents(
			telemetrytest.Ev("resilience.retry.scheduled", "error.type=transient resilience.attempt=1 resilience.outcome=transient resilience.pushback=false resilience.wait=0.001"),
			telemetrytest.Ev("resilience.retry.budget_exhausted", "error.type=transient resilience.attempt=2 resilience.outcome=transient resilience.reason=budget"),
		)
		if !slices.Equal(evs, wantEvs) {
			t.Errorf("span events:\ngot  %v\nwant %v", evs, wantEvs)
		}
	})
}
