package adaptive

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Limiter] and of a [Keyed] limiter.
const (
	DefaultMinLimit     = 2
	DefaultMaxLimit     = 200
	DefaultInitialLimit = 20
	DefaultMaxKeys      = 10_000
	DefaultIdleTimeout  = 10 * time.Minute
)

// An Option configures a [Limiter] or a [Keyed] limiter.
type Option interface{ apply(*config) }

type config struct {
	min, max, initial int
	initialSet        bool
	queueSize         int
	maxWait           time.Duration
	speculative       func(context.Context) bool

	// Keyed only.
	key       func(context.Context) string
	maxKeys   int
	idle      time.Duration
	keyedOnly string // the first keyed-only option given, for New's panic
	customKey bool   // WithKey given: keys are not targets

	tel telemetry.Config
}

func defaultConfig() config {
	return config{
		min: DefaultMinLimit, max: DefaultMaxLimit, initial: DefaultInitialLimit,
		key: targetKey, maxKeys: DefaultMaxKeys, idle: DefaultIdleTimeout,
	}
}

func targetKey(ctx context.Context) string {
	c, _ := resilience.CallFrom(ctx)
	return c.Target
}

type limitsOption struct{ min, max int }

func (o limitsOption) apply(c *config) { c.min, c.max = o.min, o.max }

// WithLimits sets the range the limit moves in (default 2 to 200). The
// minimum is what a dependency that stays slow still gets; the maximum
// bounds the calls in flight however fast the dependency is. It panics if
// min < 1 or max < min. The initial limit is clamped into the range unless
// set with [WithInitialLimit].
func WithLimits(min, max int) Option { return limitsOption{min, max} }

type initialOption int

func (o initialOption) apply(c *config) { c.initial, c.initialSet = int(o), true }

// WithInitialLimit sets the limit a limiter starts from (default 20), before
// it has seen any latency. The limit grows at once to carry demand while
// latency stays at its baseline, and decays toward demand when unused, so
// the start matters little. It panics if n is outside the range of
// [WithLimits].
func WithInitialLimit(n int) Option { return initialOption(n) }

type queueOption struct {
	size    int
	maxWait time.Duration
}

func (o queueOption) apply(c *config) { c.queueSize, c.maxWait = o.size, o.maxWait }

// WithQueue lets up to size calls wait, first come first served, for up to
// maxWait each when the limit is reached, instead of being turned away at
// once (the default). A call also stops waiting when its context is done.
// Keep the wait short, well below the calls' deadlines: a queue in front of
// an overloaded dependency is latency added to every call. It panics if
// size < 1 or maxWait <= 0.
func WithQueue(size int, maxWait time.Duration) Option { return queueOption{size, maxWait} }

type speculativeOption func(context.Context) bool

func (o speculativeOption) apply(c *config) { c.speculative = o }

// WithSpeculative marks some calls as speculative: extra attempts the
// caller can do without, such as hedges. f reports, from a call's context,
// whether it is one. A speculative call is let in only below the limit and
// while the dependency shows no queue (neither the last window's fastest
// call nor the last call to come back is above the baseline's tolerance);
// otherwise it is turned away at once with [ReasonSpeculative]. It never
// raises the limit and never waits in the queue. Hedges then still cut a
// slow tail on a dependency that keeps up, but add nothing to the queue of
// an overloaded one, where each would be work done twice for one call. f
// must be safe for concurrent use; nil (the default) marks no call.
func WithSpeculative(f func(ctx context.Context) bool) Option { return speculativeOption(f) }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key, c.customKey = o, true; c.setKeyedOnly("WithKey") }

// WithKey sets how a [Keyed] limiter picks the limiter for a call: f
// returns the key, from the call's context. The default is the call's
// target (resilience.Call.Target); calls outside any call description
// share the key "". f must be safe for concurrent use. Only for NewKeyed.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) { c.maxKeys = int(o); c.setKeyedOnly("WithMaxKeys") }

// WithMaxKeys bounds how many idle keys a [Keyed] limiter keeps (default
// 10,000); the least recently used is dropped to make room. A key with a
// call in flight is never dropped. Only for NewKeyed; it panics if n < 1.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type idleOption time.Duration

func (o idleOption) apply(c *config) { c.idle = time.Duration(o); c.setKeyedOnly("WithIdleTimeout") }

// WithIdleTimeout sets how long a [Keyed] limiter keeps the limiter of a
// key with no call in flight (default 10 minutes). Only for NewKeyed; it
// panics if d <= 0.
func WithIdleTimeout(d time.Duration) Option { return idleOption(d) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the limiter in its telemetry (the resilience.name
// attribute). Names should be few and fixed, one per kind of dependency.
// A [Keyed] limiter's name covers all its keys.
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the limiter's metrics. The default
// is the global provider (otel.GetMeterProvider) as it is when the limiter
// is built; the no-op provider of go.opentelemetry.io/otel/metric/noop
// turns metrics off.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the limiter's metrics, so that their series stay bounded
// however many hosts it sees; a [Keyed] limiter's limit gauge then reports
// the sum of its keys' limits. Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the limiter. It starts no
// span: it adds the calls it turns away as events to the recording span in
// the call's context. The default is the global provider; the no-op
// provider of go.opentelemetry.io/otel/trace/noop turns the events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }

func (c *config) setKeyedOnly(name string) {
	if c.keyedOnly == "" {
		c.keyedOnly = name
	}
}

// build applies opts to the defaults and validates the result, panicking
// with the constructor's name fn on misuse.
func build(fn string, keyed bool, opts []Option) config {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("adaptive: %s: option %d is nil", fn, i))
		}
		o.apply(&c)
	}
	switch {
	case !keyed && c.keyedOnly != "":
		panic(fmt.Sprintf("adaptive: New: %s applies to NewKeyed only", c.keyedOnly))
	case c.min < 1:
		panic(fmt.Sprintf("adaptive: WithLimits: min must be at least 1, got %d", c.min))
	case c.max < c.min:
		panic(fmt.Sprintf("adaptive: WithLimits: max must be at least min (%d), got %d", c.min, c.max))
	case c.initialSet && (c.initial < c.min || c.initial > c.max):
		panic(fmt.Sprintf("adaptive: WithInitialLimit: n must be within [%d, %d], got %d", c.min, c.max, c.initial))
	case c.maxWait != 0 && c.queueSize < 1:
		panic(fmt.Sprintf("adaptive: WithQueue: size must be at least 1, got %d", c.queueSize))
	case c.maxWait < 0 || c.queueSize != 0 && c.maxWait == 0:
		panic(fmt.Sprintf("adaptive: WithQueue: maxWait must be positive, got %v", c.maxWait))
	case c.key == nil:
		panic("adaptive: WithKey: f is nil")
	case c.maxKeys < 1:
		panic(fmt.Sprintf("adaptive: WithMaxKeys: n must be at least 1, got %d", c.maxKeys))
	case c.idle <= 0:
		panic(fmt.Sprintf("adaptive: WithIdleTimeout: d must be positive, got %v", c.idle))
	}
	c.initial = min(max(c.initial, c.min), c.max)
	return c
}
