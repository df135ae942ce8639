package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Keyed] limiter and of a [Local] admitter. The idle
// timeout used is never shorter than the time an empty bucket takes to
// fill (burst / rate, or a Local's quota window).
const (
	DefaultMaxKeys     = 10_000
	DefaultIdleTimeout = 10 * time.Minute
)

// An Option configures a [Limiter] or a [Keyed] limiter on the client side,
// or a [Local] admitter, a [Middleware] or an [Enforce] policy on the
// server side. Each option says what it applies to; one given to the wrong
// constructor makes it panic.
type Option interface{ apply(*config) }

type config struct {
	maxWait time.Duration

	// Keyed only.
	key       func(context.Context) string
	maxKeys   int
	idle      time.Duration
	keyedOnly string // the first keyed-only option given, for New's panic
	customKey bool   // WithKey given: keys are not targets

	// Middleware only.
	limits     []limit
	serverOnly string // the first Middleware-only option given

	tel telemetry.Config
}

func defaultConfig() config {
	return config{key: targetKey, maxKeys: DefaultMaxKeys, idle: DefaultIdleTimeout}
}

func targetKey(ctx context.Context) string {
	c, _ := resilience.CallFrom(ctx)
	return c.Target
}

type maxWaitOption time.Duration

func (o maxWaitOption) apply(c *config) { c.maxWait = time.Duration(o) }

// WithMaxWait sets how long a call may wait for its turn. A call that would
// have to wait longer fails at once with a [*LimitedError] saying how long
// it would have waited; it does not use up the rate. Zero, the default,
// never waits. New panics if d < 0.
func WithMaxWait(d time.Duration) Option { return maxWaitOption(d) }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key, c.customKey = o, true; c.setKeyedOnly("WithKey") }

// WithKey sets how a [Keyed] limiter picks the limiter for a call: f
// returns the key, from the call's context. The default is the call's
// target (resilience.Call.Target); calls outside any call description
// share the key "". f must be safe for concurrent use. Only for NewKeyed.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) { c.maxKeys = int(o); c.setKeyedOnly("WithMaxKeys") }

// WithMaxKeys bounds how many keys a [Keyed] limiter or a [Local]
// admitter keeps (default 10,000). When a new key would exceed it, the
// least recently used keys are dropped (a tenth of the bound at once),
// whatever is left in their buckets, and a dropped key starts again with a
// full burst (a full quota, for Local). Only for NewKeyed and NewLocal; it
// panics if n < 1.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type idleOption time.Duration

func (o idleOption) apply(c *config) { c.idle = time.Duration(o); c.setKeyedOnly("WithIdleTimeout") }

// WithIdleTimeout sets how long a [Keyed] limiter or a [Local] admitter
// keeps the bucket of a key that sees no calls (default 10 minutes). A
// timeout of at least burst / rate never changes behaviour, since by then
// the key's bucket is full again anyway; a shorter one is raised to that
// (for NewLocal, to its quota's window), so that a spent burst or quota
// never comes back early. Only for NewKeyed and NewLocal; it panics if
// d <= 0.
// A key is never dropped sooner; idle keys are dropped as new keys are
// made (within about 1.25 times the timeout while new keys keep coming),
// and WithMaxKeys bounds the number kept whatever the timeout.
func WithIdleTimeout(d time.Duration) Option { return idleOption(d) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the limiter in its telemetry (the resilience.name
// attribute). Names should be few and fixed, one per kind of dependency.
// A [Keyed] limiter's name covers all its keys. It applies to Middleware and
// Enforce too (not to NewLocal, which reports nothing itself).
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
// however many hosts it sees (the OpenTelemetry SDK keeps 2000 series per
// instrument by default). Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the limiter. It starts no
// span: it adds the calls it turns away as events to the recording span in the call's
// context. The default is the global provider; the no-op provider of
// go.opentelemetry.io/otel/trace/noop turns the events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }

func (c *config) setServerOnly(name string) {
	if c.serverOnly == "" {
		c.serverOnly = name
	}
}

func (c *config) setKeyedOnly(name string) {
	if c.keyedOnly == "" {
		c.keyedOnly = name
	}
}

func (c *config) validate(fn string, r rate.Limit, burst int, keyed bool) {
	switch {
	case math.IsNaN(float64(r)) || r <= 0:
		panic(fmt.Sprintf("ratelimit: %s: rate must be positive, got %v (x/time/rate would deny every call; rate.Inf allows every call)", fn, float64(r)))
	case burst < 1 && r != rate.Inf:
		panic(fmt.Sprintf("ratelimit: %s: burst must be at least 1, got %d", fn, burst))
	case c.serverOnly != "":
		panic(fmt.Sprintf("ratelimit: %s: %s applies to Middleware only", fn, c.serverOnly))
	case !keyed && c.keyedOnly != "":
		panic(fmt.Sprintf("ratelimit: New: %s applies to NewKeyed only", c.keyedOnly))
	case c.maxWait < 0:
		panic(fmt.Sprintf("ratelimit: WithMaxWait: d must not be negative, got %v", c.maxWait))
	case c.key == nil:
		panic("ratelimit: WithKey: f is nil")
	case c.maxKeys < 1:
		panic(fmt.Sprintf("ratelimit: WithMaxKeys: n must be at least 1, got %d", c.maxKeys))
	case c.idle <= 0:
		panic(fmt.Sprintf("ratelimit: WithIdleTimeout: d must be positive, got %v", c.idle))
	}
}
