package standard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

// New builds the standard pipeline, outermost first:
//
//	total timeout
//	→ rate limit (per host, if configured)
//	→ idempotency keys (if configured, WithIdempotencyKeys)
//	→ retry, or hedging with [WithHedging] (a retry budget per host)
//	→ pushback gate (per host)
//	→ circuit breaker (per host)
//	→ bulkhead (per host, if configured)
//	→ adaptive concurrency limit (per host, if configured)
//	→ per-attempt timeout
//
// It returns an error, and no policy, if the configuration is invalid: a
// nil option, an option's value out of range, an attempt timeout above the
// total timeout, a breaker window shorter than twice the attempt timeout,
// or WithRetries and retry.WithMaxAttempts (or hedge.WithMaxHedges) that
// disagree. The error names the option to change. Build the pipeline once
// and share it: every pipeline has its own breakers, bulkheads, rate
// limits, adaptive limits and retry budgets.
func New(opts ...Option) (resilience.Policy, error) {
	c := config{
		total:      DefaultTotalTimeout,
		attempt:    DefaultAttemptTimeout,
		retries:    DefaultRetries,
		noAdaptive: true,
	}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("standard: New: option %d is nil", i)
		}
		o.apply(&c)
	}
	for i, o := range c.adaptiveOpts {
		if o == nil {
			return nil, fmt.Errorf("standard: WithAdaptiveConcurrency: option %d is nil", i)
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}

	var ps []resilience.Policy
	err := build(func() {
		// The total timeout comes first, so that it bounds the whole
		// call, the rate limit's wait included: the limiter then never
		// waits past it, and turns a call whose turn would come later
		// away at once.
		ps = append(ps, timeout.New(c.total, append(timeoutOpts(&c, "total"), timeout.WithScope(timeout.ScopeCall))...))
		if c.hasRate {
			opts := telemetryOpts(&c, ratelimit.WithName, ratelimit.WithMeterProvider, ratelimit.WithTracerProvider, ratelimit.WithoutServerAddress)
			// Pace a burst within the call's deadline, as rate.Limiter.Wait
			// does; the user's ratelimit.WithMaxWait(0) fails fast instead.
			opts = append(opts, ratelimit.WithMaxWait(c.total))
			ps = append(ps, ratelimit.NewKeyed(c.rate, c.burst, append(opts, prepend(c.key, ratelimit.WithKey, c.rateOpts)...)...))
		}
		if k := keyer(&c); k != nil {
			ps = append(ps, k)
		}
		var b *budget.Budget
		if !c.noBudget {
			// One budget per host, so that one host's outage does not
			// spend the retries of the others.
			opts := telemetryOpts(&c, budget.WithName, budget.WithMeterProvider, nil, budget.WithoutServerAddress)
			b = budget.NewKeyed(append(opts, prepend(c.key, budget.WithKey, c.budgetOpts)...)...)
		}
		maxPushback, minAttempt := pushback.DefaultMaxPushback, pushback.DefaultMinAttemptTime
		switch {
		case c.hedging:
			opts := telemetryOpts(&c, hedge.WithName, hedge.WithMeterProvider, hedge.WithTracerProvider, hedge.WithoutServerAddress)
			// As many hedges as retries. hedge.WithMaxHedges(0) is
			// invalid: with no retries, the policy is built to see
			// whether the user's options ask for hedges, and left out
			// unless they do (and then conflict).
			hedges := c.retries
			if hedges == 0 {
				hedges = noHedges
			}
			opts = append(opts, hedge.WithMaxHedges(hedges), hedge.WithBudget(b))
			h := hedge.New(append(opts, c.hedgeOpts...)...)
			n := h.MaxHedges()
			if c.retriesSet && n != c.retries && !(c.retries == 0 && n == noHedges) {
				panic(fmt.Sprintf("standard: WithRetries(%d) conflicts with hedge.WithMaxHedges(%d) given to WithHedging: give the number of extra attempts once", c.retries, n))
			}
			if n != noHedges {
				ps = append(ps, h)
			}
		case c.retries > 0 || len(c.retryOpts) > 0:
			opts := telemetryOpts(&c, retry.WithName, retry.WithMeterProvider, retry.WithTracerProvider, retry.WithoutServerAddress)
			opts = append(opts, retry.WithMaxAttempts(c.retries+1), retry.WithBudget(b))
			r := retry.New(append(opts, c.retryOpts...)...)
			if n := r.MaxAttempts(); c.retriesSet && n != c.retries+1 {
				panic(fmt.Sprintf("standard: WithRetries(%d) conflicts with retry.WithMaxAttempts(%d) given to WithRetry: give the number of attempts once", c.retries, n))
			}
			maxPushback, minAttempt = r.MaxDelay(), r.MinAttemptTime()
			ps = append(ps, r)
		}
		if !c.noGate {
			// The gate holds no call longer than the retry would wait, and
			// turns away the calls the retry would not wait for.
			opts := telemetryOpts(&c, pushback.WithName, pushback.WithMeterProvider, pushback.WithTracerProvider, pushback.WithoutServerAddress)
			opts = append(opts, pushback.WithMaxPushback(maxPushback), pushback.WithMinAttemptTime(minAttempt))
			ps = append(ps, pushback.New(append(opts, prepend(c.key, pushback.WithKey, c.gateOpts)...)...))
		}
		if !c.noBreaker {
			opts := telemetryOpts(&c, breaker.WithName, breaker.WithMeterProvider, breaker.WithTracerProvider, breaker.WithoutServerAddress)
			b := breaker.NewKeyed(append(opts, prepend(c.key, breaker.WithKey, c.breakerOpts)...)...)
			if w := b.Window(); w != 0 && w < 2*c.attempt {
				panic(fmt.Sprintf("standard: WithAttemptTimeout(%v) is more than half the breaker's window (%v): lower it, or widen the window with WithBreaker(breaker.WithWindow(...))", c.attempt, w))
			}
			ps = append(ps, b)
		}
		if c.hasBulkhead {
			opts := telemetryOpts(&c, bulkhead.WithName, bulkhead.WithMeterProvider, bulkhead.WithTracerProvider, bulkhead.WithoutServerAddress)
			ps = append(ps, bulkhead.NewKeyed(c.bulkhead, append(opts, prepend(c.key, bulkhead.WithKey, c.bulkheadOpts)...)...))
		}
		if !c.noAdaptive {
			// Inside the breaker and the gate, which do not count the
			// calls it turns away, and outside the attempt timeout, which
			// it times as a slow call.
			opts := telemetryOpts(&c, adaptive.WithName, adaptive.WithMeterProvider, adaptive.WithTracerProvider, adaptive.WithoutServerAddress)
			if c.hedging {
				// A hedge is the same call's work again: an overloaded
				// host would do it twice.
				opts = append(opts, adaptive.WithSpeculative(isHedge))
			}
			ps = append(ps, limited{adaptive.NewKeyed(append(opts, prepend(c.key, adaptive.WithKey, c.adaptiveOpts)...)...)})
		}
		// The attempt timeout bounds an attempt and never a held result,
		// whether or not a retry started an attempt around it.
		ps = append(ps, timeout.New(c.attempt, append(timeoutOpts(&c, "attempt"), timeout.WithScope(timeout.ScopeAttempt))...))
	})
	if err != nil {
		return nil, err
	}
	return resilience.Chain(ps...), nil
}

// limited is the pipeline's adaptive limiter. A call it turns away fails
// fast, as one an open breaker refuses does (resilience.KindRefused): the
// limit is cut only when the host queues, so a retry after the backoff
// would find it still queueing, and the call would have waited its backoff
// for nothing. Measured in the scenario suite's client overload: retrying
// those calls added 100ms-1s to the successes and no success.
type limited struct{ k *adaptive.Keyed }

func (l limited) Do(ctx context.Context, op func(context.Context) error) error {
	err := l.k.Do(ctx, op)
	if err != nil && errors.Is(err, adaptive.ErrLimited) {
		return resilience.Mark(err, resilience.KindRefused)
	}
	return err
}

// isHedge reports whether an attempt of a hedged call is an extra one.
func isHedge(ctx context.Context) bool { return resilience.AttemptNumber(ctx) > 1 }

// noHedges stands for "no hedge" while the hedge policy is built with no
// retries: a number no one asks for.
const noHedges = math.MaxInt32

// validate checks the pipeline's own options. The parts check theirs when
// they are built.
func (c *config) validate() error {
	switch {
	case c.total <= 0:
		return fmt.Errorf("standard: WithTotalTimeout: must be positive, got %v", c.total)
	case c.attempt <= 0:
		return fmt.Errorf("standard: WithAttemptTimeout: must be positive, got %v", c.attempt)
	case c.attempt > c.total:
		return fmt.Errorf("standard: WithAttemptTimeout(%v) is above WithTotalTimeout(%v): lower the one or raise the other", c.attempt, c.total)
	case c.retries < 0:
		return fmt.Errorf("standard: WithRetries: must not be negative, got %d", c.retries)
	case c.hasBulkhead && c.bulkhead < 1:
		return fmt.Errorf("standard: WithBulkhead: limit must be at least 1, got %d (use WithoutBulkhead for no bulkhead)", c.bulkhead)
	case c.hasRate && (math.IsNaN(float64(c.rate)) || c.rate <= 0):
		return fmt.Errorf("standard: WithRateLimit: rate must be positive, got %v (use WithoutRateLimit for no rate limit)", float64(c.rate))
	case c.hasRate && c.burst < 1 && c.rate != rate.Inf:
		return fmt.Errorf("standard: WithRateLimit: burst must be at least 1, got %d", c.burst)
	}
	return nil
}

// prepend puts the pipeline's key option, if any, before a part's own
// options, which may override it.
func prepend[O any](key func(context.Context) string, with func(func(context.Context) string) O, opts []O) []O {
	if key == nil {
		return opts
	}
	return append([]O{with(key)}, opts...)
}

// telemetryOpts returns the options that give a part the pipeline's name and
// providers, to go before the part's own options so that those win.
func telemetryOpts[O any](c *config, name func(string) O, mp func(metric.MeterProvider) O, tp func(trace.TracerProvider) O, noServer func() O) []O {
	var opts []O
	if c.name != "" {
		opts = append(opts, name(c.name))
	}
	if c.mp != nil {
		opts = append(opts, mp(c.mp))
	}
	if c.tp != nil && tp != nil {
		opts = append(opts, tp(c.tp))
	}
	if c.noServer && noServer != nil {
		opts = append(opts, noServer())
	}
	return opts
}

// timeoutOpts returns the options of the timeout named role.
func timeoutOpts(c *config, role string) []timeout.Option {
	name := role
	if c.name != "" {
		name = c.name + "." + role
	}
	opts := telemetryOpts(c, timeout.WithName, timeout.WithMeterProvider, timeout.WithTracerProvider, timeout.WithoutServerAddress)
	if c.name == "" {
		opts = append(opts, timeout.WithName(name))
	} else {
		opts[0] = timeout.WithName(name)
	}
	return opts
}

// build runs f, which builds policies, and turns a policy constructor's
// panic over an invalid option into an error: the constructors panic, as
// programmer misuse should, but New reports configuration errors.
func build(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s, ok := r.(string)
			if !ok || !isConfigPanic(s) {
				panic(r)
			}
			err = errors.New(s)
		}
	}()
	f()
	return nil
}

func isConfigPanic(s string) bool {
	for _, p := range []string{"standard: ", "idempotency: ", "ratelimit: ", "timeout: ", "retry: ", "pushback: ", "breaker: ", "bulkhead: ", "budget: ", "hedge: ", "adaptive: "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
