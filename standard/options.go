package standard

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
)

// Defaults of the pipeline built by [New] with no options. The breaker's
// defaults are those of package breaker: it opens when half of the calls
// counted over a rolling 30s window failed, once 20 were counted, or when
// the last 20 all failed, and stays open 5s.
const (
	DefaultTotalTimeout   = 30 * time.Second
	DefaultAttemptTimeout = 10 * time.Second
	DefaultRetries        = 3
)

// An Option configures the pipeline built by [New].
type Option interface{ apply(*config) }

type config struct {
	total, attempt time.Duration
	retries        int
	retryOpts      []retry.Option
	noBreaker      bool
	breakerOpts    []breaker.Option
	bulkhead       int // 0: none
	bulkheadOpts   []bulkhead.Option
	rate           rate.Limit // 0: none
	burst          int
	rateOpts       []ratelimit.Option
	key            func(context.Context) string
	idemScope      []string // nil: no idempotency.Keyer (see idempotency.go)
	name           string
	mp             metric.MeterProvider
	tp             trace.TracerProvider
}

type totalOption time.Duration

func (o totalOption) apply(c *config) { c.total = time.Duration(o) }

// WithTotalTimeout bounds the whole call, every attempt and wait included
// (default 30s). It must be positive and at least the attempt timeout.
func WithTotalTimeout(d time.Duration) Option { return totalOption(d) }

type attemptOption time.Duration

func (o attemptOption) apply(c *config) { c.attempt = time.Duration(o) }

// WithAttemptTimeout bounds each attempt (default 10s). It must be positive,
// at most the total timeout, and at most half the breaker's window, so that
// the window holds the outcomes of at least two attempts in a row.
func WithAttemptTimeout(d time.Duration) Option { return attemptOption(d) }

type retriesOption int

func (o retriesOption) apply(c *config) { c.retries = int(o) }

// WithRetries sets how many times a failed call is retried (default 3, so 4
// attempts at most); 0 leaves retry out of the pipeline. It must not be
// negative.
func WithRetries(n int) Option { return retriesOption(n) }

type retryOptions []retry.Option

func (o retryOptions) apply(c *config) { c.retryOpts = append(c.retryOpts, o...) }

// WithRetry adds options for the retry policy, applied after the preset's
// (retry.WithMaxAttempts from [WithRetries], and retry's defaults:
// exponential backoff from 100ms to 10s with jitter 0.5). Use it to change
// the backoff, for example.
func WithRetry(opts ...retry.Option) Option { return retryOptions(opts) }

type breakerOptions []breaker.Option

func (o breakerOptions) apply(c *config) { c.breakerOpts = append(c.breakerOpts, o...) }

// WithBreaker adds options for the per-host circuit breaker
// (breaker.NewKeyed), applied after the preset's, such as
// breaker.WithOnStateChange to observe it or breaker.WithFailureRatio to
// change its threshold.
func WithBreaker(opts ...breaker.Option) Option { return breakerOptions(opts) }

type noBreakerOption struct{}

func (noBreakerOption) apply(c *config) { c.noBreaker = true }

// WithoutBreaker leaves the circuit breaker out of the pipeline.
func WithoutBreaker() Option { return noBreakerOption{} }

type bulkheadOption struct {
	limit int
	opts  []bulkhead.Option
}

func (o bulkheadOption) apply(c *config) { c.bulkhead, c.bulkheadOpts = o.limit, o.opts }

// WithBulkhead adds a per-host bulkhead (bulkhead.NewKeyed) that lets at
// most limit attempts per host run at once, configured by opts. There is
// none by default.
func WithBulkhead(limit int, opts ...bulkhead.Option) Option { return bulkheadOption{limit, opts} }

type rateOption struct {
	r     rate.Limit
	burst int
	opts  []ratelimit.Option
}

func (o rateOption) apply(c *config) { c.rate, c.burst, c.rateOpts = o.r, o.burst, o.opts }

// WithRateLimit adds a per-host client-side rate limit (ratelimit.NewKeyed)
// of r calls per second with bursts of burst, configured by opts. It comes
// first in the pipeline, so a call takes one turn however many attempts it
// makes. There is none by default.
func WithRateLimit(r rate.Limit, burst int, opts ...ratelimit.Option) Option {
	return rateOption{r, burst, opts}
}

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key = o }

// WithKey sets the key of the per-host parts (breaker, bulkhead, rate
// limit) instead of the call's target host. Options given to one part
// with [WithBreaker], [WithBulkhead] or [WithRateLimit] override it for
// that part.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type nameOption string

func (o nameOption) apply(c *config) { c.name = string(o) }

// WithName names every part of the pipeline in telemetry (the
// resilience.name attribute); the timeouts are named name+".total" and
// name+".attempt" ("total" and "attempt" when name is empty, the default),
// so that their expiries can be told apart. A part's own WithName, given
// through WithRetry, WithBreaker, ..., wins.
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.mp = o.mp }

// WithMeterProvider sets the meter provider of every part of the pipeline.
// The default is the global provider, as it is when the pipeline is built.
// A part's own WithMeterProvider, given through WithRetry, WithBreaker, ...,
// wins.
//
// To turn telemetry off altogether, pass the no-op providers of
// go.opentelemetry.io/otel/metric/noop and go.opentelemetry.io/otel/trace/noop
// to WithMeterProvider and WithTracerProvider: the policies recognise them
// and skip all telemetry work. Without an SDK installed, the global
// providers cost about as little.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tp = o.tp }

// WithTracerProvider sets the tracer provider of every part of the
// pipeline; see [WithMeterProvider]. The policies start no spans: they add
// their decisions as events to the recording span in the call's context.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }
