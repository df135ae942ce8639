package standard_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

// outage runs calls through p against a dependency that always fails and
// returns the attempts made.
func outage(t *testing.T, p resilience.Policy, calls int) (attempts int, budgetErrs int) {
	t.Helper()
	ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "down:443", Idempotent: true})
	for range calls {
		err := p.Do(ctx, func(context.Context) error { attempts++; return errors.New("503") })
		if errors.Is(err, budget.ErrExhausted) {
			budgetErrs++
		}
	}
	return attempts, budgetErrs
}

func TestRetryBudgetOnByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Breaker off: the budget alone must bound the load.
		p, err := standard.New(standard.WithoutBreaker())
		if err != nil {
			t.Fatal(err)
		}
		attempts, refused := outage(t, p, 1000)
		if want := 1000 + budget.DefaultCapacity/budget.DefaultCost; attempts != want {
			t.Fatalf("1000 calls to a dead host made %d attempts, want %d (one each, plus the retries a full budget pays for)", attempts, want)
		}
		if refused < 900 {
			t.Fatalf("only %d calls say the budget stopped them", refused)
		}
	})
}

func TestWithoutRetryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithoutBreaker(), standard.WithoutRetryBudget())
		if err != nil {
			t.Fatal(err)
		}
		if attempts, _ := outage(t, p, 200); attempts != 800 {
			t.Fatalf("200 calls without a budget made %d attempts, want 800", attempts)
		}
	})
}

func TestWithRetryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithoutBreaker(), standard.WithRetryBudget(budget.WithCapacity(10), budget.WithCost(5)),
			standard.WithRetry(retry.WithJitter(0)))
		if err != nil {
			t.Fatal(err)
		}
		if attempts, _ := outage(t, p, 100); attempts != 102 {
			t.Fatalf("100 calls with a budget of two retries made %d attempts, want 102", attempts)
		}
	})
	if _, err := standard.New(standard.WithRetryBudget(budget.WithCost(0))); err == nil || !strings.HasPrefix(err.Error(), "budget: WithCost") {
		t.Fatalf("got %v, want the budget's configuration error", err)
	}
}

// The retry budget is per host: an outage of one host, or the hedges sent
// to it, spend that host's budget only, and calls to the other hosts keep
// every retry they need. Before, one budget served the whole pipeline: the
// outage drained it and the other host's failures went unretried.
func TestRetryBudgetPerHost(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []standard.Option
	}{
		{"retry", nil},
		{"hedging", []standard.Option{standard.WithHedging()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, err := standard.New(append([]standard.Option{standard.WithoutBreaker()}, tt.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				outage(t, p, 1000) // host down:443 spends its budget
				ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "up:443", Idempotent: true})
				failed := 0
				for range 50 {
					var n atomic.Int32
					if err := p.Do(ctx, func(context.Context) error {
						if n.Add(1) == 1 {
							return errors.New("503") // once, then the retry succeeds
						}
						return nil
					}); err != nil {
						failed++
					}
				}
				if failed != 0 {
					t.Errorf("%d of 50 calls to a healthy host failed: another host's outage spent their retries", failed)
				}
				// The host that is down is still bounded by its own budget.
				if attempts, _ := outage(t, p, 100); attempts != 100 {
					t.Errorf("100 more calls to the host that is down made %d attempts, want 100 (its budget is spent)", attempts)
				}
			})
		})
	}
}
