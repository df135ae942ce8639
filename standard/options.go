package standard

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience/adaptive"
	"github.com/resilience-go/resilience/breaker"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/bulkhead"
	"github.com/resilience-go/resilience/hedge"
	"github.com/resilience-go/resilience/pushback"
	"github.com/resilience-go/resilience/ratelimit"
	"github.com/resilience-go/resilience/retry"
)

// Defaults of the pipeline built by [New] with no options. The breaker's
// defaults are those of package breaker: it opens when half of the calls
// counted over a rolling 30s window failed, once 100 were counted, or at 20
// failures in a row within the window, stays open 5s, and fails fast.
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
	retriesSet     bool // WithRetries given
	retryOpts      []retry.Option
	noGate         bool
	gateOpts       []pushback.Option
	hedging        bool
	hedgeOpts      []hedge.Option
	noBudget       bool
	budgetOpts     []budget.Option
	noBreaker      bool
	breakerOpts    []breaker.Option
	hasBulkhead    bool
	bulkhead       int
	bulkheadOpts   []bulkhead.Option
	noAdaptive     bool // no adaptive limit: the default, or WithoutAdaptiveConcurrency
	adaptiveOpts   []adaptive.Option
	hasRate        bool
	rate           rate.Limit
	burst          int
	rateOpts       []ratelimit.Option
	key            func(context.Context) string
	idemScope      []string // nil: no idempotency.Keyer (see idempotency.go)
	name           string
	mp             metric.MeterProvider
	tp             trace.TracerProvider
	noServer       bool
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

func (o retriesOption) apply(c *config) { c.retries, c.retriesSet = int(o), true }

// WithRetries sets how many times a failed call is retried (default 3, so 4
// attempts at most); 0 retries nothing. With [WithHedging] it is the number
// of hedges instead, and 0 sends none. It must not be negative, and it
// conflicts with retry.WithMaxAttempts given to [WithRetry], or
// hedge.WithMaxHedges given to WithHedging, unless both say the same.
func WithRetries(n int) Option { return retriesOption(n) }

type retryOptions []retry.Option

func (o retryOptions) apply(c *config) { c.retryOpts = append(c.retryOpts, o...) }

// WithRetry adds options for the retry policy, applied after the preset's
// (retry.WithMaxAttempts from [WithRetries], and retry's defaults:
// exponential backoff from 100ms to 10s with jitter 0.5). Use it to change
// the backoff, for example. Give the number of attempts with either
// WithRetries or retry.WithMaxAttempts: New rejects the two when they
// disagree.
func WithRetry(opts ...retry.Option) Option { return retryOptions(opts) }

type gateOptions []pushback.Option

func (o gateOptions) apply(c *config) { c.gateOpts = append(c.gateOpts, o...) }

// WithPushbackGate adds options for the per-host pushback gate
// (pushback.New), applied after the preset's. The gate is on by default:
// once a host asks for a pause (a RateLimit field with no quota left for
// the whole client, or a 429 or 503 with Retry-After, or gRPC pushback, on
// at least half of its last 20 answers), later calls to it wait at the gate
// until the pause ends, or are turned away at once if their deadline
// cannot wait; the pause is
// capped at the retry's maximum delay (10s by default), and the gate takes
// the retry's minimum attempt time (10ms by default) as its own.
func WithPushbackGate(opts ...pushback.Option) Option { return gateOptions(opts) }

type noGateOption struct{}

func (noGateOption) apply(c *config) { c.noGate = true }

// WithoutPushbackGate leaves the pushback gate out of the pipeline: each
// call then learns of a host's pushback for itself.
func WithoutPushbackGate() Option { return noGateOption{} }

type hedgingOption []hedge.Option

func (o hedgingOption) apply(c *config) { c.hedging, c.hedgeOpts = true, append(c.hedgeOpts, o...) }

// WithHedging puts a hedging policy (package hedge) in the retry policy's
// place: an idempotent call still running after the hedge delay (30ms by
// default) gets another attempt beside it, and the first acceptable result
// wins. A failed attempt is followed at once by the next one. The preset
// allows as many extra attempts as retries ([WithRetries]: 3 by default;
// WithRetries(0) leaves hedging out), all paid for from the retry budget;
// opts are applied after the preset's, and a hedge.WithMaxHedges among
// them sets the number when WithRetries is not given (New reports the two
// when they disagree). It is off by default; options given with
// [WithRetry] are then unused.
func WithHedging(opts ...hedge.Option) Option { return hedgingOption(opts) }

type budgetOptions []budget.Option

func (o budgetOptions) apply(c *config) { c.budgetOpts = append(c.budgetOpts, o...) }

// WithRetryBudget adds options for the pipeline's retry budget
// (budget.New), applied after the preset's. The budget is on by default:
// every retry costs 5 tokens of a quota of 500 that each successful call
// refills by 1, and a retry that succeeds is refunded, so that during an
// outage retries stop once the quota is spent while a brownout keeps every
// retry it needs. Each host has a budget of its own (budget.NewKeyed, keyed
// like the other per-host parts: see [WithKey]), so that one host's outage,
// or the hedges sent to it, do not spend the retries of the others; the
// budgets of hosts idle for 10 minutes are forgotten, and start full again.
func WithRetryBudget(opts ...budget.Option) Option { return budgetOptions(opts) }

type noBudgetOption struct{}

func (noBudgetOption) apply(c *config) { c.noBudget = true }

// WithoutRetryBudget leaves the retry budget out: every failed call is
// retried as often as the retry policy allows (use with care: during an
// outage that multiplies the load by the number of attempts until the
// breaker opens).
func WithoutRetryBudget() Option { return noBudgetOption{} }

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

func (o bulkheadOption) apply(c *config) {
	c.hasBulkhead, c.bulkhead, c.bulkheadOpts = true, o.limit, o.opts
}

// WithBulkhead adds a per-host bulkhead (bulkhead.NewKeyed) that lets at
// most limit attempts per host run at once, configured by opts. There is
// none by default. limit must be at least 1: a limit of 0 would let
// nothing through, and New reports it as an error; leave the option out,
// or use [WithoutBulkhead], for no bulkhead.
func WithBulkhead(limit int, opts ...bulkhead.Option) Option { return bulkheadOption{limit, opts} }

type noBulkheadOption struct{}

func (noBulkheadOption) apply(c *config) { c.hasBulkhead, c.bulkhead, c.bulkheadOpts = false, 0, nil }

// WithoutBulkhead leaves the bulkhead out of the pipeline, undoing an
// earlier [WithBulkhead]. It is the default.
func WithoutBulkhead() Option { return noBulkheadOption{} }

type adaptiveOption []adaptive.Option

func (o adaptiveOption) apply(c *config) {
	c.noAdaptive, c.adaptiveOpts = false, append(c.adaptiveOpts, o...)
}

// WithAdaptiveConcurrency puts a per-host adaptive concurrency limit
// (adaptive.NewKeyed) in the pipeline, configured by opts (applied after
// the preset's: the pipeline's key, name and providers; with no opts, the
// package's defaults: a limit from 2 to 200 per host, starting at 20, no
// queue). There is none by default: the scenario suite found no cost to any other scenario, but with
// hedging a replacement attempt after a failure is refused as if it were a
// hedge beside another (the README's Overload section gives the figures).
//
// The limit bounds the attempts in flight to each host, and follows the
// host's latency: it shrinks when the host starts to queue, and grows back
// when it stops, so that an overloaded host gets the calls it can serve at
// a short queue and the rest are turned away at once, instead of waiting
// in its queue until their callers give up while it still does their work.
// It sits where a bulkhead goes, inside the breaker and the pushback gate
// and outside the attempt timeout (after the bulkhead, when both are
// configured), so that hedges and retries take slots too; a hedge gets one
// only while the host shows no queue (adaptive.WithSpeculative), since an
// overloaded host would do its work twice. A call it turns away fails at
// once with an *adaptive.LimitError (errors.Is adaptive.ErrLimited),
// refused (resilience.KindRefused) as by an open breaker: the retry does
// not retry it (it would find the host still queueing, after waiting its
// backoff for nothing), and neither the breaker nor the gate counts it.
func WithAdaptiveConcurrency(opts ...adaptive.Option) Option { return adaptiveOption(opts) }

type noAdaptiveOption struct{}

func (noAdaptiveOption) apply(c *config) { c.noAdaptive, c.adaptiveOpts = true, nil }

// WithoutAdaptiveConcurrency leaves the adaptive concurrency limit out of
// the pipeline, undoing an earlier [WithAdaptiveConcurrency]. It is the
// default.
func WithoutAdaptiveConcurrency() Option { return noAdaptiveOption{} }

type rateOption struct {
	r     rate.Limit
	burst int
	opts  []ratelimit.Option
}

func (o rateOption) apply(c *config) {
	c.hasRate, c.rate, c.burst, c.rateOpts = true, o.r, o.burst, o.opts
}

// WithRateLimit adds a per-host client-side rate limit (ratelimit.NewKeyed)
// of r calls per second with bursts of burst, configured by opts. It comes
// before the retry in the pipeline, so a call takes one turn however many
// attempts it makes. There is none by default.
//
// A call that finds no token waits for its turn, as rate.Limiter.Wait
// does: within the total timeout, which counts the wait (the total
// timeout is outside the rate limit), and never past the call's own
// deadline; a call whose turn would come too late fails at once with a
// ratelimit.LimitedError. So a burst above the limit is paced, not failed.
// To fail at once instead, pass ratelimit.WithMaxWait(0) in opts.
//
// r must be positive (rate.Inf lets every call through) and burst at least
// 1: x/time/rate reads a zero limit as "deny everything", so New reports
// it as an error; leave the option out, or use [WithoutRateLimit], for no
// rate limit.
func WithRateLimit(r rate.Limit, burst int, opts ...ratelimit.Option) Option {
	return rateOption{r, burst, opts}
}

type noRateOption struct{}

func (noRateOption) apply(c *config) { c.hasRate, c.rate, c.burst, c.rateOpts = false, 0, 0, nil }

// WithoutRateLimit leaves the rate limit out of the pipeline, undoing an
// earlier [WithRateLimit]. It is the default.
func WithoutRateLimit() Option { return noRateOption{} }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key = o }

// WithKey sets the key of the per-host parts (retry budget, pushback gate,
// breaker, bulkhead, adaptive concurrency limit, rate limit) instead of the
// call's target host. Options given to one part with [WithRetryBudget],
// [WithPushbackGate], [WithBreaker], [WithBulkhead],
// [WithAdaptiveConcurrency] or [WithRateLimit] override it for that part.
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

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.noServer = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off every part's metrics, so that the number of series stays
// bounded however many hosts the pipeline calls (see docs/telemetry.md):
// use it for a client that talks to many hosts, or to hosts chosen by its
// users. Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tp = o.tp }

// WithTracerProvider sets the tracer provider of every part of the
// pipeline; see [WithMeterProvider]. The policies start no spans: they add
// their decisions as events to the recording span in the call's context.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }
