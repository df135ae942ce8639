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
// of the calls counted over a rolling 30s window failed, once 100 were
// counted, or when 20 calls in a row failed within the window; it stays
// open 5s, then lets one probe through. An open breaker fails fast.
//
// The numbers are chosen so that a brownout never opens the breaker while
// an outage opens it within 20 calls, whatever the traffic. At 30% failures
// the chance that the failures ever reach half of the calls counted, once
// 100 were (checked after every failure, from a fresh count), is 3.1e-5;
// with 20 as the minimum, as before, it was 6.5%. The chance of 20 failures
// in a row somewhere in 1000 calls is 2.4e-8. A caller who never makes 100
// calls in 30s still sees an outage open the breaker at its 20th failure in
// a row (package documentation, "Defaults").
const (
	DefaultFailureRatio        = 0.5
	DefaultMinCalls            = 100
	DefaultConsecutiveFailures = 20
	DefaultWindow              = 30 * time.Second
	DefaultBucket              = 3 * time.Second
	DefaultOpenDuration        = 5 * time.Second
	DefaultHalfOpenProbes      = 1
)

// MaxBuckets bounds the number of buckets of a window (window / bucket, see
// [WithWindow]), so that the memory of a breaker, which each key of a
// [Keyed] breaker has, stays small.
const MaxBuckets = 100

// Defaults of a [Keyed] breaker.
const (
	DefaultMaxKeys     = 10_000
	DefaultIdleTimeout = 10 * time.Minute
)

// An Option configures a [Breaker] or a [Keyed] breaker.
type Option interface{ apply(*config) }

type config struct {
	ratio         float64
	minCalls      int
	consecutive   int
	window        time.Duration
	bucket        time.Duration
	open          time.Duration
	probes        int
	waitForProbe  bool
	slowSet       bool          // WithSlowCalls given
	slow          time.Duration // 0: slow calls are not counted
	slowRatio     float64
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
		ratio:       DefaultFailureRatio,
		minCalls:    DefaultMinCalls,
		consecutive: DefaultConsecutiveFailures,
		window:      DefaultWindow,
		bucket:      DefaultBucket,
		open:        DefaultOpenDuration,
		probes:      DefaultHalfOpenProbes,
		key:         targetKey,
		maxKeys:     DefaultMaxKeys,
		idle:        DefaultIdleTimeout,
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

func (o ratioOption) apply(c *config) { c.ratio, c.minCalls = o.ratio, o.minCalls }

// WithFailureRatio makes the breaker open when the share of failures among
// the calls counted in the rolling window ([WithWindow]) reaches ratio, once
// at least minCalls were counted. Calls whose outcome is not counted (see
// the package documentation) do not add to minCalls. The defaults are 0.5
// and 100.
//
// The rule applies beside [WithConsecutiveFailures]: the breaker opens when
// either is met. A small minCalls makes a brownout open the breaker: at 30%
// failures and minCalls 20, about one fresh count in 15 reaches half
// failures somewhere. New panics unless 0 < ratio <= 1 and minCalls >= 1.
func WithFailureRatio(ratio float64, minCalls int) Option { return ratioOption{ratio, minCalls} }

type consecutiveOption int

func (o consecutiveOption) apply(c *config) { c.consecutive = int(o) }

// WithConsecutiveFailures makes the breaker open when n failures in a row
// are counted within the rolling window (default 20), whatever their share
// of the calls and however few calls there were: it is the rule that
// catches an outage seen by a caller who makes few calls, or that follows a
// busy healthy period whose successes still fill the window.
//
// A success ends the run, and so does a throttled or rejected answer (an
// HTTP 429 or 404): the dependency answered. The caller's own cancellation
// or deadline, and calls refused by a local policy, neither extend nor end
// it. Failures that left the window leave the run.
//
// The rule applies beside [WithFailureRatio]. New panics if n < 1.
func WithConsecutiveFailures(n int) Option { return consecutiveOption(n) }

type windowOption struct{ window, bucket time.Duration }

func (o windowOption) apply(c *config) { c.window, c.bucket = o.window, o.bucket }

// WithWindow sets the rolling window over which the breaker counts
// outcomes, and the period of its buckets: outcomes leave the window one
// bucket at a time, so bucket is the window's resolution. The defaults are
// 30s and 3s. New panics unless 0 < bucket <= window, window is a multiple
// of bucket, and the window has at most [MaxBuckets] buckets.
func WithWindow(window, bucket time.Duration) Option { return windowOption{window, bucket} }

type waitOption struct{}

func (waitOption) apply(c *config) { c.waitForProbe = true }

// WithWaitForProbe makes a call turned away by the breaker ask a retry
// policy outside it to try again after the next probe, rather than to give
// up. By default an open breaker fails fast: its error is marked
// resilience.KindRefused, which no retry policy retries, and the call
// returns at once.
//
// With this option, the error is marked as throttled
// (resilience.KindThrottled) and carries, for resilience.RetryAfter, the
// time until the next probe plus a random delay of up to a quarter of the
// open duration, so that the callers waiting for the probe do not all come
// back at once. A call turned away while the probes are in flight carries
// no delay: the retry policy's own backoff applies. Use with care: callers
// wait up to the open duration, within their deadline, instead of failing.
func WithWaitForProbe() Option { return waitOption{} }

type slowOption struct {
	threshold time.Duration
	ratio     float64
}

func (o slowOption) apply(c *config) { c.slowSet, c.slow, c.slowRatio = true, o.threshold, o.ratio }

// WithSlowCalls counts a call that took longer than threshold as slow, and
// makes the breaker open when the share of slow calls among the calls
// counted in the window reaches ratio, once the minimum of
// [WithFailureRatio] was counted. Slow calls are not counted by default.
//
// A call's duration runs until the operation returned: an HTTP response's
// headers, a gRPC stream's start. It includes the time spent in the
// policies inside the breaker, such as a bulkhead's wait for a slot. A slow call that failed is both a failure
// and slow; a slow success counts for neither the failure ratio nor against
// it, and ends a run of failures. A half-open breaker's probe that is slow
// opens the breaker again.
//
// With an attempt timeout inside the breaker, as the standard pipeline has
// it, an attempt cut off by the timeout is a failure, and slow if it lasted
// longer than threshold. Set threshold below the attempt timeout, so that a
// dependency turning slow opens the breaker before its calls time out; a
// threshold at or above the timeout only counts the timeouts, which the
// failure rules already do.
//
// New panics unless threshold > 0 and 0 < ratio <= 1.
func WithSlowCalls(threshold time.Duration, ratio float64) Option {
	return slowOption{threshold, ratio}
}

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
// A key is never dropped sooner; idle keys are dropped as new keys are
// made (within about 1.25 times the timeout while new keys keep coming),
// and WithMaxKeys bounds the number kept whatever the timeout.
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
	case !(c.ratio > 0 && c.ratio <= 1):
		panic(fmt.Sprintf("breaker: WithFailureRatio: ratio must be in (0, 1], got %v", c.ratio))
	case c.minCalls < 1:
		panic(fmt.Sprintf("breaker: WithFailureRatio: minCalls must be at least 1, got %d", c.minCalls))
	case c.consecutive < 1:
		panic(fmt.Sprintf("breaker: WithConsecutiveFailures: n must be at least 1, got %d", c.consecutive))
	case c.minCalls > 1<<31-1 || c.consecutive > 1<<31-1:
		panic("breaker: WithFailureRatio, WithConsecutiveFailures: count too large")
	case c.bucket <= 0 || c.window < c.bucket || c.window%c.bucket != 0:
		panic(fmt.Sprintf("breaker: WithWindow: need 0 < bucket <= window with window a multiple of bucket, got window %v, bucket %v", c.window, c.bucket))
	case c.window/c.bucket > MaxBuckets:
		panic(fmt.Sprintf("breaker: WithWindow: at most %d buckets, got window %v / bucket %v = %d", MaxBuckets, c.window, c.bucket, c.window/c.bucket))
	case c.slowSet && !(c.slow > 0 && c.slowRatio > 0 && c.slowRatio <= 1):
		panic(fmt.Sprintf("breaker: WithSlowCalls: need threshold > 0 and ratio in (0, 1], got %v, %v", c.slow, c.slowRatio))
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
