package pushback

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Gate] built with no options.
const (
	// DefaultMaxPushback caps how long one pushback closes a gate: the
	// retry policy's default maximum delay (retry.DefaultMaxDelay), so
	// that the gate never holds a call longer than a retry would have
	// waited for the same answer.
	DefaultMaxPushback = 10 * time.Second
	// DefaultMinAttemptTime is the least time a call must have left before
	// its deadline, once the gate reopens, to be worth holding; the same
	// as retry.DefaultMinAttemptTime.
	DefaultMinAttemptTime = 10 * time.Millisecond
	// DefaultProbeTimeout is how long the calls held at a reopening gate
	// wait for the probe's answer before they go anyway.
	DefaultProbeTimeout = time.Second
	// DefaultReleaseSpread is how long the calls held at a gate take, at
	// random, to leave once it reopens.
	DefaultReleaseSpread = 100 * time.Millisecond
	DefaultMaxKeys       = 10_000
	DefaultIdleTimeout   = 10 * time.Minute
)

// An Option configures a [Gate].
type Option interface{ apply(*config) }

type config struct {
	maxPushback  time.Duration
	minAttempt   time.Duration
	probeTimeout time.Duration
	spread       time.Duration
	key          func(context.Context) string
	maxKeys      int
	idle         time.Duration
	tel          telemetry.Config
}

func defaultConfig() config {
	return config{
		maxPushback:  DefaultMaxPushback,
		minAttempt:   DefaultMinAttemptTime,
		probeTimeout: DefaultProbeTimeout,
		spread:       DefaultReleaseSpread,
		key:          targetKey,
		maxKeys:      DefaultMaxKeys,
		idle:         DefaultIdleTimeout,
	}
}

// targetKey is the default key: the call's target.
func targetKey(ctx context.Context) string {
	c, _ := resilience.CallFrom(ctx)
	return c.Target
}

type maxPushbackOption time.Duration

func (o maxPushbackOption) apply(c *config) { c.maxPushback = time.Duration(o) }

// WithMaxPushback caps how long one pushback closes the gate (default
// [DefaultMaxPushback], 10s): a server asking for an hour's pause closes
// it for d. Give it the retry policy's maximum delay (retry.Policy.MaxDelay)
// when that differs from the default; the standard pipeline does. New
// panics unless d > 0.
func WithMaxPushback(d time.Duration) Option { return maxPushbackOption(d) }

type minAttemptOption time.Duration

func (o minAttemptOption) apply(c *config) { c.minAttempt = time.Duration(o) }

// WithMinAttemptTime sets the least time a call must have left before its
// deadline when the gate reopens for it to wait (default
// [DefaultMinAttemptTime], 10ms). A call with less is turned away at once.
// New panics if d < 0.
func WithMinAttemptTime(d time.Duration) Option { return minAttemptOption(d) }

type probeTimeoutOption time.Duration

func (o probeTimeoutOption) apply(c *config) { c.probeTimeout = time.Duration(o) }

// WithProbeTimeout sets how long the calls held at a reopening gate wait
// for the probe's answer (default [DefaultProbeTimeout], 1s). When the
// probe takes longer, the gate opens: a slow answer is not pushback, and a
// hung dependency is the business of the attempt timeout and the breaker.
// New panics unless d > 0.
func WithProbeTimeout(d time.Duration) Option { return probeTimeoutOption(d) }

type spreadOption time.Duration

func (o spreadOption) apply(c *config) { c.spread = time.Duration(o) }

// WithReleaseSpread sets how long the calls held at the gate take to leave
// once it reopens (default [DefaultReleaseSpread], 100ms): each leaves
// after a random delay in [0, d), never past its deadline less the minimum
// attempt time, so that a host that just ended a pause is not sent every
// held call, each on a new connection, in the same instant. Zero lets them
// all go together. New panics if d < 0.
func WithReleaseSpread(d time.Duration) Option { return spreadOption(d) }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key = o }

// WithKey sets how the gate picks the host state for a call: f returns the
// key, from the call's context. The default is the call's target
// (resilience.Call.Target), the host of an HTTP request or the authority of
// a gRPC call; calls outside any call description share the key "". f must
// be safe for concurrent use. New panics if f is nil.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) { c.maxKeys = int(o) }

// WithMaxKeys bounds how many keys the gate keeps (default 10,000). When a
// new key would exceed it, the least recently used key is forgotten, even
// if it was closed: memory stays bounded whatever the number of hosts.
// Keys with calls in flight or held are never forgotten, so the bound may
// be passed by their number. New panics if n < 1.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type idleOption time.Duration

func (o idleOption) apply(c *config) { c.idle = time.Duration(o) }

// WithIdleTimeout sets how long the gate keeps a key that sees no calls
// (default 10 minutes, and never less than the maximum pushback, so that
// a closed gate is not forgotten before it would reopen). New panics unless
// d > 0.
// A key is never dropped sooner; idle keys are dropped as new keys are
// made (within about 1.25 times the timeout while new keys keep coming),
// and WithMaxKeys bounds the number kept whatever the timeout.
func WithIdleTimeout(d time.Duration) Option { return idleOption(d) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the gate in its telemetry (the resilience.name attribute).
// Names should be few and fixed, one per kind of dependency.
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the gate's metrics. The default is
// the global provider (otel.GetMeterProvider) as it is when the gate is
// built; the no-op provider of go.opentelemetry.io/otel/metric/noop turns
// metrics off.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the gate. The gate starts
// no span: it adds its decisions as events to the recording span in the
// call's context. The default is the global provider; the no-op provider of
// go.opentelemetry.io/otel/trace/noop turns the events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the gate's metrics, so that their series stay bounded
// however many hosts it sees (the OpenTelemetry SDK keeps 2000 series per
// instrument by default). Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

func (c *config) validate() {
	switch {
	case c.maxPushback <= 0:
		panic(fmt.Sprintf("pushback: WithMaxPushback: d must be positive, got %v", c.maxPushback))
	case c.minAttempt < 0:
		panic(fmt.Sprintf("pushback: WithMinAttemptTime: d must not be negative, got %v", c.minAttempt))
	case c.probeTimeout <= 0:
		panic(fmt.Sprintf("pushback: WithProbeTimeout: d must be positive, got %v", c.probeTimeout))
	case c.spread < 0:
		panic(fmt.Sprintf("pushback: WithReleaseSpread: d must not be negative, got %v", c.spread))
	case c.key == nil:
		panic("pushback: WithKey: f is nil")
	case c.maxKeys < 1:
		panic(fmt.Sprintf("pushback: WithMaxKeys: n must be at least 1, got %d", c.maxKeys))
	case c.idle <= 0:
		panic(fmt.Sprintf("pushback: WithIdleTimeout: d must be positive, got %v", c.idle))
	}
}
