package standard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
	"github.com/resilience-go/resilience/timeout"
)

// New builds the standard pipeline, outermost first:
//
//	rate limit (per host, if configured)
//	→ idempotency keys (if configured, WithIdempotencyKeys)
//	→ total timeout
//	→ retry
//	→ circuit breaker (per host)
//	→ bulkhead (per host, if configured)
//	→ per-attempt timeout
//
// It returns an error, and no policy, if the configuration is invalid: an
// option's value out of range, an attempt timeout above the total timeout,
// or a breaker window shorter than twice the attempt timeout.
func New(opts ...Option) (resilience.Policy, error) {
	c := config{
		total:   DefaultTotalTimeout,
		attempt: DefaultAttemptTimeout,
		retries: DefaultRetries,
	}
	for _, o := range opts {
		o.apply(&c)
	}
	switch {
	case c.total <= 0:
		return nil, fmt.Errorf("standard: WithTotalTimeout: must be positive, got %v", c.total)
	case c.attempt <= 0:
		return nil, fmt.Errorf("standard: WithAttemptTimeout: must be positive, got %v", c.attempt)
	case c.attempt > c.total:
		return nil, fmt.Errorf("standard: attempt timeout %v is above the total timeout %v", c.attempt, c.total)
	case c.retries < 0:
		return nil, fmt.Errorf("standard: WithRetries: must not be negative, got %d", c.retries)
	case c.bulkhead < 0:
		return nil, fmt.Errorf("standard: WithBulkhead: limit must be at least 1, got %d", c.bulkhead)
	case c.rate < 0:
		return nil, fmt.Errorf("standard: WithRateLimit: rate must be positive, got %v", float64(c.rate))
	}

	var ps []resilience.Policy
	err := build(func() {
		if c.rate != 0 {
			opts := telemetryOpts(&c, ratelimit.WithName, ratelimit.WithMeterProvider, ratelimit.WithTracerProvider)
			ps = append(ps, ratelimit.NewKeyed(c.rate, c.burst, append(opts, prepend(c.key, ratelimit.WithKey, c.rateOpts)...)...))
		}
		if k := keyer(&c); k != nil {
			ps = append(ps, k)
		}
		ps = append(ps, timeout.New(c.total, timeoutOpts(&c, "total")...))
		if c.retries > 0 {
			opts := telemetryOpts(&c, retry.WithName, retry.WithMeterProvider, retry.WithTracerProvider)
			opts = append(opts, retry.WithMaxAttempts(c.retries+1))
			ps = append(ps, retry.New(append(opts, c.retryOpts...)...))
		}
		if !c.noBreaker {
			opts := telemetryOpts(&c, breaker.WithName, breaker.WithMeterProvider, breaker.WithTracerProvider)
			b := breaker.NewKeyed(append(opts, prepend(c.key, breaker.WithKey, c.breakerOpts)...)...)
			if w := b.Window(); w != 0 && w < 2*c.attempt {
				panic(fmt.Sprintf("standard: breaker window %v is shorter than twice the attempt timeout %v", w, c.attempt))
			}
			ps = append(ps, b)
		}
		if c.bulkhead != 0 {
			opts := telemetryOpts(&c, bulkhead.WithName, bulkhead.WithMeterProvider, bulkhead.WithTracerProvider)
			ps = append(ps, bulkhead.NewKeyed(c.bulkhead, append(opts, prepend(c.key, bulkhead.WithKey, c.bulkheadOpts)...)...))
		}
		ps = append(ps, timeout.New(c.attempt, timeoutOpts(&c, "attempt")...))
	})
	if err != nil {
		return nil, err
	}
	return resilience.Chain(ps...), nil
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
func telemetryOpts[O any](c *config, name func(string) O, mp func(metric.MeterProvider) O, tp func(trace.TracerProvider) O) []O {
	var opts []O
	if c.name != "" {
		opts = append(opts, name(c.name))
	}
	if c.mp != nil {
		opts = append(opts, mp(c.mp))
	}
	if c.tp != nil {
		opts = append(opts, tp(c.tp))
	}
	return opts
}

// timeoutOpts returns the options of the timeout named role.
func timeoutOpts(c *config, role string) []timeout.Option {
	name := role
	if c.name != "" {
		name = c.name + "." + role
	}
	opts := telemetryOpts(c, timeout.WithName, timeout.WithMeterProvider, timeout.WithTracerProvider)
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
	for _, p := range []string{"standard: ", "idempotency: ", "ratelimit: ", "timeout: ", "retry: ", "breaker: ", "bulkhead: "} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
