package standard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/standard"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInvalidConfiguration(t *testing.T) {
	tests := []struct {
		name string
		opts []standard.Option
		want string
	}{
		{"attempt above total", []standard.Option{standard.WithTotalTimeout(5 * time.Second)}, "standard: WithAttemptTimeout(10s) is above WithTotalTimeout(5s)"},
		{"window shorter than two attempts", []standard.Option{standard.WithBreaker(breaker.WithWindow(15*time.Second, 5*time.Second))}, "standard: WithAttemptTimeout(10s) is more than half the breaker's window (15s): lower it, or widen the window with WithBreaker(breaker.WithWindow(...))"},
		{"zero total", []standard.Option{standard.WithTotalTimeout(0)}, "standard: WithTotalTimeout"},
		{"negative attempt", []standard.Option{standard.WithAttemptTimeout(-time.Second)}, "standard: WithAttemptTimeout"},
		{"negative retries", []standard.Option{standard.WithRetries(-1)}, "standard: WithRetries"},
		{"bad breaker option", []standard.Option{standard.WithBreaker(breaker.WithFailureRatio(2, 20))}, "breaker: WithFailureRatio: ratio must be in (0, 1], got 2"},
		{"bad retry option", []standard.Option{standard.WithRetry(retry.WithJitter(3))}, "retry: WithJitter"},
		{"bad bulkhead", []standard.Option{standard.WithBulkhead(-2)}, "standard: WithBulkhead"},
		{"bad bulkhead option", []standard.Option{standard.WithBulkhead(2, bulkhead.WithMaxWait(-1))}, "bulkhead: WithMaxWait"},
		{"bad rate limit", []standard.Option{standard.WithRateLimit(10, 0)}, "standard: WithRateLimit: burst must be at least 1, got 0"},
		{"zero rate", []standard.Option{standard.WithRateLimit(0, 10)}, "standard: WithRateLimit: rate must be positive, got 0 (use WithoutRateLimit for no rate limit)"},
		{"negative rate", []standard.Option{standard.WithRateLimit(-1, 10)}, "standard: WithRateLimit: rate must be positive"},
		{"zero bulkhead", []standard.Option{standard.WithBulkhead(0)}, "standard: WithBulkhead: limit must be at least 1, got 0 (use WithoutBulkhead for no bulkhead)"},
		{"nil option", []standard.Option{standard.WithRetries(1), nil}, "standard: New: option 1 is nil"},
		{"retries conflict", []standard.Option{standard.WithRetries(2), standard.WithRetry(retry.WithMaxAttempts(10))}, "standard: WithRetries(2) conflicts with retry.WithMaxAttempts(10) given to WithRetry"},
		{"no retries conflict", []standard.Option{standard.WithRetries(0), standard.WithRetry(retry.WithMaxAttempts(3))}, "standard: WithRetries(0) conflicts with retry.WithMaxAttempts(3)"},
		{"bad pushback gate option", []standard.Option{standard.WithPushbackGate(pushback.WithProbeTimeout(0))}, "pushback: WithProbeTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := standard.New(tt.opts...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, %v; want error %q", p, err, tt.want)
			}
			if p != nil {
				t.Fatalf("got a policy with the error")
			}
		})
	}
}

func TestValidConfigurations(t *testing.T) {
	for _, opts := range [][]standard.Option{
		nil,
		{standard.WithTotalTimeout(10 * time.Second)},   // attempt == total
		{standard.WithAttemptTimeout(15 * time.Second)}, // window == 2 attempts
		{standard.WithAttemptTimeout(time.Minute), standard.WithTotalTimeout(time.Hour), standard.WithoutBreaker()},
		{standard.WithBreaker(breaker.WithConsecutiveFailures(5), breaker.WithWindow(20*time.Second, time.Second))},
		{standard.WithRetries(0), standard.WithBulkhead(10), standard.WithRateLimit(100, 10)},
		{standard.WithRetries(3), standard.WithRetry(retry.WithMaxAttempts(4))}, // they agree
		{standard.WithRetry(retry.WithMaxAttempts(10))},                         // given once
		{standard.WithBulkhead(0), standard.WithoutBulkhead(), standard.WithRateLimit(0, 0), standard.WithoutRateLimit()},
		{standard.WithRateLimit(rate.Inf, 0)},
		{standard.WithoutServerAddress()},
	} {
		if _, err := standard.New(opts...); err != nil {
			t.Errorf("New: %v", err)
		}
	}
}

// An attempt turned away by the open breaker ends the call at once, with
// breaker.ErrOpen: the retry policy does not wait for the next probe.
func TestOpenBreakerFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(
			standard.WithBreaker(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(2*time.Second)),
			standard.WithRetry(retry.WithBackoff(time.Millisecond, 10*time.Second), retry.WithJitter(0)),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "db:5432", Idempotent: true})
		var calls []time.Duration
		start := time.Now()
		err = p.Do(ctx, func(context.Context) error {
			calls = append(calls, time.Since(start))
			return errors.New("connection refused")
		})
		// Attempt 1 fails and opens the breaker; attempt 2, 1ms later,
		// is refused, and the call ends.
		if !errors.Is(err, breaker.ErrOpen) || len(calls) != 1 {
			t.Fatalf("got %v after %d attempts, want ErrOpen after 1", err, len(calls))
		}
		if took := time.Since(start); took > time.Millisecond {
			t.Fatalf("the call took %v, want the 1ms backoff and no wait for the probe", took)
		}
		start = time.Now()
		if err := p.Do(ctx, func(context.Context) error { return nil }); !errors.Is(err, breaker.ErrOpen) || time.Since(start) != 0 {
			t.Fatalf("next call: %v after %v, want ErrOpen at once", err, time.Since(start))
		}
	})
}

// With breaker.WithWaitForProbe, an attempt turned away by the open
// breaker makes the retry policy wait for the next probe, not spin.
func TestRetryWaitsForProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(
			standard.WithBreaker(breaker.WithConsecutiveFailures(1), breaker.WithOpenDuration(2*time.Second), breaker.WithWaitForProbe()),
			standard.WithRetry(retry.WithBackoff(time.Millisecond, 10*time.Second), retry.WithJitter(0)),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "db:5432", Idempotent: true})
		var calls []time.Duration
		start := time.Now()
		err = p.Do(ctx, func(context.Context) error {
			calls = append(calls, time.Since(start))
			if len(calls) == 1 {
				return errors.New("connection refused")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("got %v, want success on the probe", err)
		}
		// Attempt 1 fails and opens the breaker; attempt 2, 1ms later,
		// is turned away and asks to wait until the probe, plus up to a
		// quarter of the open duration; attempt 3 is the probe.
		lo, hi := 2*time.Second+time.Millisecond, 2*time.Second+time.Millisecond+500*time.Millisecond
		if len(calls) != 2 || calls[1] < lo || calls[1] > hi {
			t.Fatalf("op ran at %v, want twice, the second in [%v, %v]", calls, lo, hi)
		}
	})
}

func TestPerHostBreakers(t *testing.T) {
	p, err := standard.New(standard.WithRetries(0), standard.WithBreaker(breaker.WithConsecutiveFailures(1)))
	if err != nil {
		t.Fatal(err)
	}
	down := resilience.WithCall(t.Context(), resilience.Call{Target: "down:443", Idempotent: true})
	up := resilience.WithCall(t.Context(), resilience.Call{Target: "up:443", Idempotent: true})
	p.Do(down, func(context.Context) error { return errors.New("refused") })
	if err := p.Do(down, func(context.Context) error { return nil }); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("down host: got %v, want ErrOpen", err)
	}
	if err := p.Do(up, func(context.Context) error { return nil }); err != nil {
		t.Fatalf("up host: got %v", err)
	}
}

// One call's 429 with Retry-After holds the next call to the same host at
// the gate; without the gate, the next call goes out at once.
func TestPushbackGateOnByDefault(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []standard.Option
		want time.Duration // when the second call is sent
	}{
		{"default", []standard.Option{standard.WithRetries(0)}, 3 * time.Second},
		// The first call's retry waits 1s (its max delay) and probes.
		{"capped at the retry's max delay", []standard.Option{standard.WithRetry(retry.WithBackoff(time.Millisecond, time.Second))}, time.Second},
		{"own cap", []standard.Option{standard.WithRetries(0), standard.WithPushbackGate(pushback.WithMaxPushback(2 * time.Second))}, 2 * time.Second},
		{"without", []standard.Option{standard.WithRetries(0), standard.WithoutPushbackGate()}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, err := standard.New(tt.opts...)
				if err != nil {
					t.Fatal(err)
				}
				ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "api:443", Idempotent: true})
				start := time.Now()
				n := 0
				p.Do(ctx, func(context.Context) error {
					if n++; n == 1 {
						return resilience.MarkRetryAfter(errors.New("429"), resilience.KindThrottled, 3*time.Second)
					}
					return nil
				})
				var sent time.Duration
				if err := p.Do(ctx, func(context.Context) error { sent = time.Since(start); return nil }); err != nil {
					t.Fatal(err)
				}
				if sent != tt.want {
					t.Fatalf("second call sent at %v, want %v", sent, tt.want)
				}
			})
		})
	}
}

// The gate turns away a call that the retry would not wait for: it takes
// the retry's minimum attempt time.
func TestPushbackGateTakesTheRetrysMinAttemptTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := standard.New(standard.WithRetry(retry.WithMaxAttempts(1), retry.WithMinAttemptTime(500*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		ctx := resilience.WithCall(t.Context(), resilience.Call{Target: "api:443", Idempotent: true})
		p.Do(ctx, func(context.Context) error {
			return resilience.MarkRetryAfter(errors.New("429"), resilience.KindThrottled, time.Second)
		})
		short, cancel := context.WithTimeout(ctx, 1400*time.Millisecond) // 400ms after the reopening
		defer cancel()
		calls := 0
		err = p.Do(short, func(context.Context) error { calls++; return nil })
		if !errors.Is(err, pushback.ErrClosed) || calls != 0 {
			t.Fatalf("got %v with %d calls, want ErrClosed and none", err, calls)
		}
	})
}

func BenchmarkStandard(b *testing.B) {
	p, err := standard.New()
	if err != nil {
		b.Fatal(err)
	}
	ctx := resilience.WithCall(context.Background(), resilience.Call{Target: "api.example.com:443", Method: "GET", Idempotent: true})
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		p.Do(ctx, op)
	}
}
