package retry

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Policy] built with no options.
const (
	DefaultMaxAttempts  = 4 // the first call and three retries
	DefaultInitialDelay = 100 * time.Millisecond
	DefaultMaxDelay     = 10 * time.Second
	DefaultMultiplier   = 2.0
	DefaultJitter       = 0.5
	// DefaultMinAttemptTime is the least time before the context's
	// deadline for which a retry is worth starting: about one round trip
	// to a dependency in the same region and the time to read a small
	// answer. An attempt started with less left ends, far more often than
	// not, as a deadline error after the dependency did the work for
	// nothing, and a breaker behind the retry sees one failure more.
	DefaultMinAttemptTime = 10 * time.Millisecond
)

// An Option configures a [Policy].
type Option interface{ apply(*config) }

type config struct {
	maxAttempts int
	initial     time.Duration
	maxDelay    time.Duration
	multiplier  float64
	jitter      float64
	maxElapsed  time.Duration
	minAttempt  time.Duration
	retryIf     func(error) bool
	onRetry     func(context.Context, Event)
	budget      *budget.Budget // nil: no limit
	tel         telemetry.Config
}

func defaultConfig() config {
	return config{
		maxAttempts: DefaultMaxAttempts,
		initial:     DefaultInitialDelay,
		maxDelay:    DefaultMaxDelay,
		multiplier:  DefaultMultiplier,
		jitter:      DefaultJitter,
		minAttempt:  DefaultMinAttemptTime,
		retryIf:     defaultRetryIf,
	}
}

func defaultRetryIf(err error) bool { return resilience.Classify(err).Retryable() }

type maxAttemptsOption int

func (o maxAttemptsOption) apply(c *config) { c.maxAttempts = int(o) }

// WithMaxAttempts sets how many attempts are made at most, counting the
// first call: n = 1 never retries, n = 4 (the default) retries three times.
// New panics if n < 1.
func WithMaxAttempts(n int) Option { return maxAttemptsOption(n) }

type backoffOption struct{ initial, max time.Duration }

func (o backoffOption) apply(c *config) { c.initial, c.maxDelay = o.initial, o.max }

// WithBackoff sets the delay before the first retry and the maximum delay
// between attempts. The delay grows by the multiplier after each retry
// ([WithMultiplier]), is spread by the jitter ([WithJitter]) and never
// exceeds max, not even when the server asks for a longer wait. The
// defaults are 100ms and 10s. New panics unless 0 < initial <= max.
func WithBackoff(initial, max time.Duration) Option { return backoffOption{initial, max} }

type multiplierOption float64

func (o multiplierOption) apply(c *config) { c.multiplier = float64(o) }

// WithMultiplier sets the factor by which the delay grows after each retry
// (default 2). New panics if m < 1.
func WithMultiplier(m float64) Option { return multiplierOption(m) }

type jitterOption float64

func (o jitterOption) apply(c *config) { c.jitter = float64(o) }

// WithJitter sets how far each delay is spread at random around its nominal
// value: a delay d becomes a uniform pick in [d(1-f), d(1+f)], then capped
// at the maximum delay. The default 0.5 keeps clients that failed together
// from retrying together; 0 disables jitter (use with care: synchronised
// retries can keep a recovering server down). New panics unless 0 <= f <= 1.
func WithJitter(f float64) Option { return jitterOption(f) }

type maxElapsedOption time.Duration

func (o maxElapsedOption) apply(c *config) { c.maxElapsed = time.Duration(o) }

// WithMaxElapsed stops retrying once a further wait would take the call past
// d since its first attempt began. Zero, the default, sets no such limit;
// a total timeout outside the policy bounds the call instead. New panics if
// d < 0.
func WithMaxElapsed(d time.Duration) Option { return maxElapsedOption(d) }

type minAttemptOption time.Duration

func (o minAttemptOption) apply(c *config) { c.minAttempt = time.Duration(o) }

// WithMinAttemptTime sets the least time that must be left before the
// context's deadline for a retry to start (default
// [DefaultMinAttemptTime], 10ms). A wait that would end later than d
// before the deadline is not started (the policy gives up with
// [ErrDeadline]); an attempt whose wait ended with less than d left is not
// started either ([ErrTooLate]). Zero only forbids attempts at or past the
// deadline. The first attempt is always made unless the context is already
// done or its deadline has passed. New panics if d < 0.
func WithMinAttemptTime(d time.Duration) Option { return minAttemptOption(d) }

type retryIfOption func(error) bool

func (o retryIfOption) apply(c *config) { c.retryIf = o }

// WithRetryIf replaces the test that decides whether a failed attempt is
// worth retrying. The default retries what resilience.Classify calls
// retryable. Whatever f says, the caller's cancellation and calls that are
// not idempotent are never retried. f must be safe for concurrent use.
func WithRetryIf(f func(err error) bool) Option { return retryIfOption(f) }

type onRetryOption func(context.Context, Event)

func (o onRetryOption) apply(c *config) { c.onRetry = o }

// WithOnRetry sets a function called before each wait, with the context of
// the call and what is about to happen. It runs on the calling goroutine,
// outside any lock; a slow f delays the retry.
func WithOnRetry(f func(ctx context.Context, e Event)) Option { return onRetryOption(f) }

type budgetOption struct{ b *budget.Budget }

func (o budgetOption) apply(c *config) { c.budget = o.b }

// WithBudget makes every retry pay for itself from b, a retry budget that
// may be shared with other policies (see package budget): before each
// retry the policy takes the retry's cost from b, and when b has too few
// tokens left it gives up with an [*Error] whose reason is [ErrBudget]. A
// successful call credits b, and a success on a retry gets that retry's
// cost back. With a budget from budget.NewKeyed, each call spends from and
// credits the budget of its host (b.For). Nil, the default, sets no
// budget. Calls that are not idempotent are never retried and neither earn
// nor spend.
func WithBudget(b *budget.Budget) Option { return budgetOption{b} }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the policy in its telemetry (the resilience.name
// attribute). Names should be few and fixed, one per kind of dependency.
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the policy's metrics. The default
// is the global provider (otel.GetMeterProvider) as it is when the policy
// is built; the no-op provider of go.opentelemetry.io/otel/metric/noop
// turns metrics off, attempts are then not even timed.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the policy's metrics, so that their series stay bounded
// however many hosts it sees (the OpenTelemetry SDK keeps 2000 series per
// instrument by default). Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the policy. The policy
// starts no span: it adds its decisions as events to the recording span in
// the call's context. The default is the global provider; the no-op
// provider of go.opentelemetry.io/otel/trace/noop turns the events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }

func (c *config) validate() {
	switch {
	case c.maxAttempts < 1:
		panic(fmt.Sprintf("retry: WithMaxAttempts: n must be at least 1, got %d", c.maxAttempts))
	case c.initial <= 0 || c.maxDelay < c.initial:
		panic(fmt.Sprintf("retry: WithBackoff: need 0 < initial <= max, got initial %v, max %v", c.initial, c.maxDelay))
	case !(c.multiplier >= 1):
		panic(fmt.Sprintf("retry: WithMultiplier: m must be at least 1, got %v", c.multiplier))
	case !(c.jitter >= 0 && c.jitter <= 1):
		panic(fmt.Sprintf("retry: WithJitter: f must be in [0, 1], got %v", c.jitter))
	case c.maxElapsed < 0:
		panic(fmt.Sprintf("retry: WithMaxElapsed: d must not be negative, got %v", c.maxElapsed))
	case c.minAttempt < 0:
		panic(fmt.Sprintf("retry: WithMinAttemptTime: d must not be negative, got %v", c.minAttempt))
	case c.retryIf == nil:
		panic("retry: WithRetryIf: f is nil")
	}
}
