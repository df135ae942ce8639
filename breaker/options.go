package breaker

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Breaker] built with no options: it opens when at least half
// of the calls counted over a rolling 30s window failed, once 20 were
// counted (or when the last 20 all failed), stays open 5s, then lets one
// probe through.
const (
	DefaultFailureRatio   = 0.5
	DefaultMinCalls       = 20
	DefaultWindow         = 30 * time.Second
	DefaultBucket         = 3 * time.Second
	DefaultOpenDuration   = 5 * time.Second
	DefaultHalfOpenProbes = 1
)

// Defaults of a [Keyed] breaker.
const (
	DefaultMaxKeys     = 10_000
	DefaultIdleTimeout = 10 * time.Minute
)

// An Option configures a [Breaker] or a [Keyed] breaker.
type Option interface{ apply(*config) }

type mode uint8

const (
	modeRatio mode = iota
	modeConsecutive
)

type config struct {
	mode          mode
	ratio         float64
	minCalls      int
	consecutive   int
	window        time.Duration
	bucket        time.Duration
	open          time.Duration
	probes        int
	name          string
	onStateChange func(name string, from, to State)
	tel           telemetry.Config // Name is set from name when built

	// Keyed only.
	customKey bool // WithKey given: keys are not targets
	key       func(context.Context) string
	maxKeys   int
	idle      time.Duration
	keyedOnly string // name of the first keyed-only option given, for New's panic
}

func defaultConfig() config {
	return config{
		mode:     modeRatio,
		ratio:    DefaultFailureRatio,
		minCalls: DefaultMinCalls,
		window:   DefaultWindow,
		bucket:   DefaultBucket,
		open:     DefaultOpenDuration,
		probes:   DefaultHalfOpenProbes,
		key:      targetKey,
		maxKeys:  DefaultMaxKeys,
		idle:     DefaultIdleTimeout,
	}
}

// targetKey is the default key of a Keyed breaker: the call's target.
func targetKey(ctx context.Context) string {
	c, _ := resilience.CallFrom(ctx)
	return c.Target
}

type ratioOption struct {
	ratio    float64
	minCalls int
}

func (o ratioOption) apply(c *config) { c.mode, c.ratio, c.minCalls = modeRatio, o.ratio, o.minCalls }

// WithFailureRatio makes the breaker open when the share of failures among
// the calls counted in the rolling window ([WithWindow]) reaches ratio, once
// at least minCalls were counted. Calls whose outcome is not counted (see
// the package documentation) do not add to minCalls. This is the default
// mode, with ratio 0.5 and minCalls 20.
//
// The breaker also opens when the last minCalls counted calls all failed.
// Without that, an outage that follows a busy healthy period would go
// unnoticed until the window's successes aged out: at a steady rate, most
// of the window's length. A brownout does not trip it: at 30% failures, 20
// failures in a row have a chance of about 3e-11.
//
// It replaces [WithConsecutiveFailures]. New panics unless 0 < ratio <= 1
// and minCalls >= 1.
func WithFailureRatio(ratio float64, minCalls int) Option { return ratioOption{ratio, minCalls} }

type consecutiveOption int

func (o consecutiveOption) apply(c *config) { c.mode, c.consecutive = modeConsecutive, int(o) }

// WithConsecutiveFailures makes the breaker open after n failures in a row,
// whatever their share of the calls; a success resets the run. It replaces
// [WithFailureRatio]. New panics if n < 1.
func WithConsecutiveFailures(n int) Option { return consecutiveOption(n) }

type windowOption struct{ window, bucket time.Duration }

func (o windowOption) apply(c *config) { c.window, c.bucket = o.window, o.bucket }

// WithWindow sets the rolling window over which [WithFailureRatio] counts
// outcomes, and the period of its buckets: outcomes leave the window one
// bucket at a time, so bucket is the window's resolution. The defaults are
// 30s and 3s. The window is not used by [WithConsecutiveFailures]. New
// panics unless 0 < bucket <= window and window is a multiple of bucket.
func WithWindow(window, bucket time.Duration) Option { return windowOption{window, bucket} }

type openOption time.Duration

func (o openOption) apply(c *config) { c.open = time.Duration(o) }

// WithOpenDuration sets how long the breaker stays open before it lets
// probes through (default 5s). New panics if d <= 0.
func WithOpenDuration(d time.Duration) Option { return openOption(d) }

type probesOption int

func (o probesOption) apply(c *config) { c.probes = int(o) }

// WithHalfOpenProbes sets how many calls the half-open breaker lets through
// (default 1). It closes once all of them succeed and opens again at the
// first failure; other calls are turned away meanwhile. New panics if
// n < 1.
func WithHalfOpenProbes(n int) Option { return probesOption(n) }

type nameOption string

func (o nameOption) apply(c *config) { c.name = string(o) }

// WithName names the breaker in its state changes, errors and telemetry
// (the resilience.name attribute). A [Keyed] breaker uses it in telemetry
// only: each of its breakers is named by its key in state changes and
// errors.
func WithName(name string) Option { return nameOption(name) }

type onStateChangeOption func(name string, from, to State)

func (o onStateChangeOption) apply(c *config) { c.onStateChange = o }

// WithOnStateChange sets a function called after each change of state, with
// the breaker's name (a [Keyed] breaker's key). It runs outside any lock, on
// the goroutine of a call that the change happened in, or that came just
// after it; calls to one breaker are delivered one at a time, in order. It
// may call the breaker's methods. A slow f delays that call.
func WithOnStateChange(f func(name string, from, to State)) Option { return onStateChangeOption(f) }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) {
	c.key = o
	c.customKey = true
	c.setKeyedOnly("WithKey")
}

// WithKey sets how a [Keyed] breaker picks the breaker for a call: f
// returns the key, from the call's context. The default is the call's
// target (resilience.Call.Target), the host of an HTTP request or the
// authority of a gRPC call; calls outside any call description share the
// key "". f must be safe for concurrent use. Only for NewKeyed.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) {
	c.maxKeys = int(o)
	c.setKeyedOnly("WithMaxKeys")
}

// WithMaxKeys bounds how many keys a [Keyed] breaker keeps (default
// 10,000). When a new key would exceed it, the breaker of the least
// recently used key is dropped, even if it was open: memory stays bounded
// whatever the number of keys. Keys with a call in flight are never
// dropped, so the bound may be passed by the number of such keys. Only for
// NewKeyed; it panics if n < 1.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type idleOption time.Duration

func (o idleOption) apply(c *config) {
	c.idle = time.Duration(o)
	c.setKeyedOnly("WithIdleTimeout")
}

// WithIdleTimeout sets how long a [Keyed] breaker keeps the breaker of a
// key that sees no calls (default 10 minutes). Only for NewKeyed; it panics
// if d <= 0.
func WithIdleTimeout(d time.Duration) Option { return idleOption(d) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the breaker's metrics. The default
// is the global provider (otel.GetMeterProvider) as it is when the breaker
// is built; the no-op provider of go.opentelemetry.io/otel/metric/noop
// turns metrics off.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the breaker's metrics, so that their series stay bounded
// however many hosts it sees (the OpenTelemetry SDK keeps 2000 series per
// instrument by default). Span events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the breaker. The breaker
// starts no span: it adds its state changes and rejections as events to the
// recording span in the call's context. The default is the global
// provider; the no-op provider of go.opentelemetry.io/otel/trace/noop turns
// the events off.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }

func (c *config) setKeyedOnly(name string) {
	if c.keyedOnly == "" {
		c.keyedOnly = name
	}
}

func (c *config) validate(keyed bool) {
	switch {
	case !keyed && c.keyedOnly != "":
		panic(fmt.Sprintf("breaker: New: %s applies to NewKeyed only", c.keyedOnly))
	case c.mode == modeRatio && !(c.ratio > 0 && c.ratio <= 1):
		panic(fmt.Sprintf("breaker: WithFailureRatio: ratio must be in (0, 1], got %v", c.ratio))
	case c.mode == modeRatio && c.minCalls < 1:
		panic(fmt.Sprintf("breaker: WithFailureRatio: minCalls must be at least 1, got %d", c.minCalls))
	case c.mode == modeConsecutive && c.consecutive < 1:
		panic(fmt.Sprintf("breaker: WithConsecutiveFailures: n must be at least 1, got %d", c.consecutive))
	case c.bucket <= 0 || c.window < c.bucket || c.window%c.bucket != 0:
		panic(fmt.Sprintf("breaker: WithWindow: need 0 < bucket <= window with window a multiple of bucket, got window %v, bucket %v", c.window, c.bucket))
	case c.open <= 0:
		panic(fmt.Sprintf("breaker: WithOpenDuration: d must be positive, got %v", c.open))
	case c.probes < 1:
		panic(fmt.Sprintf("breaker: WithHalfOpenProbes: n must be at least 1, got %d", c.probes))
	case c.probes > 1<<31-1:
		panic(fmt.Sprintf("breaker: WithHalfOpenProbes: n too large, got %d", c.probes))
	case c.key == nil:
		panic("breaker: WithKey: f is nil")
	case c.maxKeys < 1:
		panic(fmt.Sprintf("breaker: WithMaxKeys: n must be at least 1, got %d", c.maxKeys))
	case c.idle <= 0:
		panic(fmt.Sprintf("breaker: WithIdleTimeout: d must be positive, got %v", c.idle))
	}
}
