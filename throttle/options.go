package throttle

import (
	"context"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Throttle] and of a [Keyed] throttle.
const (
	DefaultK              = 2.0
	DefaultMaxProbability = 0.9
	DefaultWindow         = 30 * time.Second
	DefaultMaxKeys        = 10_000
	DefaultIdleTimeout    = 10 * time.Minute
)

// An Option configures a [Throttle] or a [Keyed] throttle.
type Option interface{ apply(*config) }

type config struct {
	k      float64
	maxP   float64
	window time.Duration

	// Keyed only.
	key       func(context.Context) string
	maxKeys   int
	idle      time.Duration
	keyedOnly string // the first keyed-only option given, for New's panic
	customKey bool   // WithKey given: keys are not targets

	tel telemetry.Config
}

func defaultConfig() config {
	return config{k: DefaultK, maxP: DefaultMaxProbability, window: DefaultWindow, key: targetKey, maxKeys: DefaultMaxKeys, idle: DefaultIdleTimeout}
}

func targetKey(ctx context.Context) string {
	c, _ := resilience.CallFrom(ctx)
	return c.Target
}

type kOption float64

func (o kOption) apply(c *config) { c.k = float64(o) }

// WithK sets the multiplier K of the accepts (default 2): the throttle lets
// through up to K calls per call the dependency accepted before it starts
// turning calls away. A lower K throttles sooner and harder (1 sends the
// dependency no more than it accepts); a higher K wastes more of the
// dependency's effort on calls it refuses but reacts less to short bursts
// of refusals. It panics if k < 1 or k is not finite.
func WithK(k float64) Option { return kOption(k) }

type maxProbabilityOption float64

func (o maxProbabilityOption) apply(c *config) { c.maxP = float64(o) }

// WithMaxProbability caps the probability of rejection (default 0.9, as
// Envoy's admission control caps its own at 0.8). Without a cap, a
// dependency that refused everything for a whole window is sent about one
// call per window, since the calls turned away count as requests: once it
// recovers, accepts come back one by one and the throttle takes several
// windows to let traffic through again. With the cap, at least a tenth of
// the calls still reach it, and the throttle lets traffic back within about
// a window of its recovery. Leave a dependency that is down to a circuit
// breaker. It panics unless 0 < p <= 1; 1 is the SRE book's formula
// uncapped.
func WithMaxProbability(p float64) Option { return maxProbabilityOption(p) }

type windowOption time.Duration

func (o windowOption) apply(c *config) { c.window = time.Duration(o) }

// WithWindow sets how far back the throttle counts requests and accepts
// (default 30 seconds); the window slides by a twentieth of its length.
// The window is the throttle's memory: once a dependency recovers, the
// throttle lets all calls through again within about one window, when the
// refusals have left it. The SRE book's two minutes make for a slow
// recovery; a much shorter window reacts to brief bursts of refusals. It panics if d is shorter than a millisecond.
func WithWindow(d time.Duration) Option { return windowOption(d) }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key, c.customKey = o, true; c.setKeyedOnly("WithKey") }

// WithKey sets how a [Keyed] throttle picks the throttle for a call: f
// returns the key, from the call's context. The default is the call's
// target (resilience.Call.Target); calls outside any call description
// share the key "". f must be safe for concurrent use. Only for NewKeyed.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) { c.maxKeys = int(o); c.setKeyedOnly("WithMaxKeys") }

// WithMaxKeys bounds how many idle keys a [Keyed] throttle keeps (default
// 10,000); the least recently used is dropped to make room. A key with a
// call in flight is never dropped. Only for NewKeyed; it panics if n < 1.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type idleOption time.Duration

func (o idleOption) apply(c *config) { c.idle = time.Duration(o); c.setKeyedOnly("WithIdleTimeout") }

// WithIdleTimeout sets how long a [Keyed] throttle keeps the throttle of a
// key with no call in flight (default 10 minutes). Only for NewKeyed; it
// panics if d <= 0.
func WithIdleTimeout(d time.Duration) Option { return idleOption(d) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the throttle in its telemetry (the resilience.name
// attribute). Names should be few and fixed, one per kind of dependency.
// A [Keyed] throttle's name covers all its keys.
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the throttle's metrics. The default
// is the global provider (otel.GetMeterProvider) as it is when the throttle
// is built; the no-op provider of go.opentelemetry.io/otel/metric/noop
// turns metrics off.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the throttle's metrics, so that their series stay bounded
// however many hosts it sees; a [Keyed] throttle's probability gauge then
// reports the highest probability over its keys. Span events are not
// affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the throttle. It starts no
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
			panic(fmt.Sprintf("throttle: %s: option %d is nil", fn, i))
		}
		o.apply(&c)
	}
	switch {
	case !keyed && c.keyedOnly != "":
		panic(fmt.Sprintf("throttle: New: %s applies to NewKeyed only", c.keyedOnly))
	case !(c.k >= 1) || math.IsInf(c.k, 0):
		panic(fmt.Sprintf("throttle: WithK: k must be a finite number of at least 1, got %v", c.k))
	case !(c.maxP > 0 && c.maxP <= 1):
		panic(fmt.Sprintf("throttle: WithMaxProbability: p must be in (0, 1], got %v", c.maxP))
	case c.window < time.Millisecond:
		panic(fmt.Sprintf("throttle: WithWindow: d must be at least 1ms, got %v", c.window))
	case c.key == nil:
		panic("throttle: WithKey: f is nil")
	case c.maxKeys < 1:
		panic(fmt.Sprintf("throttle: WithMaxKeys: n must be at least 1, got %d", c.maxKeys))
	case c.idle <= 0:
		panic(fmt.Sprintf("throttle: WithIdleTimeout: d must be positive, got %v", c.idle))
	}
	return c
}
