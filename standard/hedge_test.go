package standard_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/standard"
)

func TestWithHedging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithHedging(hedge.WithDelay(50*time.Millisecond)), standard.WithBulkhead(2))
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "api:443", Idempotent: true})
		for i := range 10 {
			start := time.Now()
			v, err := resilience.Do(ctx, p, func(ctx context.Context) (int, error) {
				n := resilience.AttemptNumber(ctx)
				if n == 1 {
					select {
					case <-time.After(2 * time.Second):
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				} else {
					time.Sleep(10 * time.Millisecond)
				}
				return n, nil
			})
			// Each call through the per-host bulkhead of 2: a loser's
			// slot must be back before the next call.
			if err != nil || v != 2 || time.Since(start) != 60*time.Millisecond {
				t.Fatalf("call %d: got %d, %v after %v; want the hedge's 2 after 60ms", i, v, err, time.Since(start))
			}
		}
	})
}

func TestWithHedgingOutageBoundedByBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithHedging(), standard.WithoutBreaker())
		if err != nil {
			t.Fatal(err)
		}
		attempts, refused := outage(t, p, 1000)
		if want := 1000 + budget.DefaultCapacity/budget.DefaultCost; attempts != want {
			t.Fatalf("1000 hedged calls to a dead host made %d attempts, want %d", attempts, want)
		}
		if refused < 900 {
			t.Fatalf("only %d calls say the budget stopped them", refused)
		}
	})
}

func TestWithHedgingInvalid(t *testing.T) {
	_, err := standard.New(standard.WithHedging(hedge.WithMaxHedges(0)))
	if err == nil || !strings.HasPrefix(err.Error(), "hedge: WithMaxHedges") {
		t.Fatalf("got %v, want the hedge's configuration error", err)
	}
}

// BenchmarkHedging compares the standard pipeline's success path, where no
// hedge fires, with hedging and with retry (the default), telemetry off.
func BenchmarkHedging(b *testing.B) {
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true})
	op := func(context.Context) error { return nil }
	off := []standard.Option{standard.WithMeterProvider(metricnoop.NewMeterProvider()), standard.WithTracerProvider(tracenoop.NewTracerProvider())}
	for _, bm := range []struct {
		name string
		opts []standard.Option
	}{
		{"retry", nil},
		{"retry-nobudget", []standard.Option{standard.WithoutRetryBudget()}},
		{"hedging", []standard.Option{standard.WithHedging()}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			p, err := standard.New(append(bm.opts, off...)...)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Do(ctx, op)
			}
		})
	}
}

// Hedges pass the per-host breaker like any attempt: they count towards
// opening it, and once it is open a call fails fast, without hedges.
func TestWithHedgingPassesTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithHedging(), standard.WithBreaker(breaker.WithConsecutiveFailures(2)))
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "db:5432", Idempotent: true})
		calls := 0
		down := func(context.Context) error { calls++; return errors.New("connection refused") }
		// The first attempt and the hedge it triggers fail and open the
		// breaker; the next hedge is turned away.
		if err := p.Do(ctx, down); !errors.Is(err, breaker.ErrOpen) || calls != 2 {
			t.Fatalf("got %v after %d attempts, want breaker.ErrOpen after 2", err, calls)
		}
		calls = 0
		start := time.Now()
		if err := p.Do(ctx, down); !errors.Is(err, breaker.ErrOpen) || calls != 0 || time.Since(start) != 0 {
			t.Fatalf("got %v after %d attempts and %v, want breaker.ErrOpen at once", err, calls, time.Since(start))
		}
	})
}

// A losing hedge that was a half-open breaker's probe gives its probe back:
// the breaker does not stay stuck with its probes taken.
func TestWithHedgingLoserReleasesProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(
			standard.WithHedging(hedge.WithDelay(50*time.Millisecond), hedge.WithMaxHedges(1)),
			standard.WithBreaker(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(time.Second), breaker.WithHalfOpenProbes(2)))
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "db:5432", Idempotent: true})
		p.Do(ctx, func(context.Context) error { return errors.New("connection refused") }) // opens it
		time.Sleep(2 * time.Second)                                                        // half-open: two probes
		err = p.Do(ctx, func(ctx context.Context) error {
			if resilience.AttemptNumber(ctx) == 1 {
				<-ctx.Done() // a slow probe, cancelled when the hedge wins
				return ctx.Err()
			}
			return nil
		})
		if err != nil {
			t.Fatalf("hedged call through the half-open breaker: %v", err)
		}
		for i := range 3 {
			if err := p.Do(ctx, func(context.Context) error { return nil }); err != nil {
				t.Fatalf("call %d after the hedged one: %v (the loser's probe was not given back)", i, err)
			}
		}
	})
}

// The preset sends as many hedges as retries: WithRetries(n) with
// WithHedging makes at most n+1 attempts, and WithRetries(0) makes one.
// Before, WithRetries(0) left hedge's own default (1 hedge) in place.
func TestWithHedgingFollowsWithRetries(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     []standard.Option
		attempts int
	}{
		{"default", nil, 4},
		{"WithRetries(0)", []standard.Option{standard.WithRetries(0)}, 1},
		{"WithRetries(1)", []standard.Option{standard.WithRetries(1)}, 2},
		{"WithRetries(0), delay", []standard.Option{standard.WithRetries(0), standard.WithHedging(hedge.WithDelay(time.Millisecond))}, 1},
		{"hedge.WithMaxHedges(2)", []standard.Option{standard.WithHedging(hedge.WithMaxHedges(2))}, 3},
		{"WithRetries(2), hedge.WithMaxHedges(2)", []standard.Option{standard.WithRetries(2), standard.WithHedging(hedge.WithMaxHedges(2))}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, err := standard.New(append([]standard.Option{standard.WithHedging(), standard.WithoutBreaker()}, tt.opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "api:443", Idempotent: true})
				var attempts atomic.Int32
				p.Do(ctx, func(ctx context.Context) error {
					attempts.Add(1)
					<-ctx.Done() // slow: every hedge the policy allows is sent
					return ctx.Err()
				})
				if got := int(attempts.Load()); got != tt.attempts {
					t.Errorf("%d attempts, want %d", got, tt.attempts)
				}
			})
		})
	}
}

// WithRetries and hedge.WithMaxHedges that disagree are a configuration
// error, as WithRetries and retry.WithMaxAttempts are.
func TestWithHedgingRetriesConflict(t *testing.T) {
	for _, opts := range [][]standard.Option{
		{standard.WithRetries(0), standard.WithHedging(hedge.WithMaxHedges(2))},
		{standard.WithRetries(3), standard.WithHedging(hedge.WithMaxHedges(2))},
	} {
		_, err := standard.New(opts...)
		if err == nil || !strings.Contains(err.Error(), "conflicts with hedge.WithMaxHedges") {
			t.Errorf("got %v, want an error naming the conflict", err)
		}
	}
}
