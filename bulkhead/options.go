package bulkhead

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Keyed] bulkhead.
const (
	DefaultMaxKeys     = 10_000
	DefaultIdleTimeout = 10 * time.Minute
)

// An Option configures a [Bulkhead] or a [Keyed] bulkhead.
type Option interface{ apply(*config) }

type config struct {
	maxWait time.Duration

	// Keyed only.
	key       func(context.Context) string
	maxKeys   int
	idle      time.Duration
	keyedOnly string // the first keyed-only option given, for New's panic
	customKey bool   // WithKey given: keys are not targets

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

// WithMaxWait sets how long a call waits for a slot when all are taken
// before it fails with ErrFull. Zero, the default, fails at once. The wait
// also ends when the call's context is done. New panics if d < 0.
func WithMaxWait(d time.Duration) Option { return maxWaitOption(d) }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key, c.customKey = o, true; c.setKeyedOnly("WithKey") }

// WithKey sets how a [Keyed] bulkhead picks the bulkhead for a call: f
// returns the key, from the call's context. The default is the call's
// target (resilience.Call.Target); calls outside any call description
// share the key "". f must be safe for concurrent use. Only for NewKeyed.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) { c.maxKeys = int(o); c.setKeyedOnly("WithMaxKeys") }

// WithMaxKeys bounds how many idle keys a [Keyed] bulkhead keeps (default
// 10,000); the least recently used is dropped to make room. A key with a
// slot taken is never dropped, so its limit always holds. Only for
// NewKeyed; it panics if n < 1.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type idleOption time.Duration

func (o idleOption) apply(c *config) { c.idle = time.Duration(o); c.setKeyedOnly("WithIdleTimeout") }

// WithIdleTimeout sets how long a [Keyed] bulkhead keeps the bulkhead of a
// key with no slot taken (default 10 minutes). Only for NewKeyed; it
// panics if d <= 0.
// A key is never dropped sooner; idle keys are dropped as new keys are
// made (within about 1.25 times the timeout while new keys keep coming),
// and WithMaxKeys bounds the number kept whatever the timeout.
func WithIdleTimeout(d time.Duration) Option { return idleOption(d) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the bulkhead in its telemetry (the resilience.name
// attribute). Names should be few and fixed, one per kind of dependency.
// A [Keyed] bulkhead's name covers all its keys.
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the bulkhead's metrics. The default
// is the global provider (otel.GetMeterProvider) as it is when the bulkhead
// is built; the no-op provider of go.opentelemetry.io/otel/metric/noop
// turns metrics off.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the bulkhead's metrics, so that their series stay bounded
// however many hosts it sees (the OpenTelemetry SDK keeps 2000 series per
// instrument by default). Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the bulkhead. It starts no
// span: it adds the calls it turns away as events to the recording span in the call's
// context. The default is the global provider; the no-op provider of
// go.opentelemetry.io/otel/trace/noop turns the events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }

func (c *config) setKeyedOnly(name string) {
	if c.keyedOnly == "" {
		c.keyedOnly = name
	}
}

func (c *config) validate(fn string, limit int, keyed bool) {
	switch {
	case limit < 1:
		panic(fmt.Sprintf("bulkhead: %s: limit must be at least 1, got %d", fn, limit))
	case !keyed && c.keyedOnly != "":
		panic(fmt.Sprintf("bulkhead: New: %s applies to NewKeyed only", c.keyedOnly))
	case c.maxWait < 0:
		panic(fmt.Sprintf("bulkhead: WithMaxWait: d must not be negative, got %v", c.maxWait))
	case c.key == nil:
		panic("bulkhead: WithKey: f is nil")
	case c.maxKeys < 1:
		panic(fmt.Sprintf("bulkhead: WithMaxKeys: n must be at least 1, got %d", c.maxKeys))
	case c.idle <= 0:
		panic(fmt.Sprintf("bulkhead: WithIdleTimeout: d must be positive, got %v", c.idle))
	}
}
