package shed

import (
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Shedder].
const (
	// DefaultMaxQueue is how many requests wait for a slot at most.
	DefaultMaxQueue = 100
	// DefaultMaxWait is how long a request waits for a slot at most.
	DefaultMaxWait = 50 * time.Millisecond
	// DefaultMaxRetryAfter caps the Retry-After of a shed request; it is
	// the standard client pipeline's maximum retry delay.
	DefaultMaxRetryAfter = 10 * time.Second
)

// An Option configures a [Shedder] (New).
type Option interface{ apply(*config) }

type config struct {
	maxQueue      int
	maxWait       time.Duration
	maxRetryAfter time.Duration
	tel           telemetry.Config
}

func defaultConfig() config {
	return config{maxQueue: DefaultMaxQueue, maxWait: DefaultMaxWait, maxRetryAfter: DefaultMaxRetryAfter}
}

type queueOption struct {
	n       int
	maxWait time.Duration
}

func (o queueOption) apply(c *config) {
	if o.n < 0 {
		panic(fmt.Sprintf("shed: WithQueue: n must not be negative, got %d", o.n))
	}
	if o.n > 0 && o.maxWait <= 0 {
		panic(fmt.Sprintf("shed: WithQueue: maxWait must be positive, got %v", o.maxWait))
	}
	c.maxQueue, c.maxWait = o.n, o.maxWait
}

// WithQueue lets at most n requests wait for a slot when every slot is
// taken, each for at most maxWait (and never past its own context). The
// queue is ordered by priority: a freed slot goes to the oldest critical
// request, then default, then sheddable; a request that finds the queue
// full pushes out the newest waiting request of a lower priority, or is
// shed itself when there is none. WithQueue(0, 0) sheds at once every
// request that finds no free slot. Keep maxWait short, of the order of
// the handler's own time: a request's wait adds to its latency, and under
// overload the queue is always full. The default is
// WithQueue(DefaultMaxQueue, DefaultMaxWait). It panics if n is negative,
// or maxWait not positive with n > 0.
func WithQueue(n int, maxWait time.Duration) Option {
	return queueOption{n: n, maxWait: maxWait}
}

type maxRetryAfterOption time.Duration

func (o maxRetryAfterOption) apply(c *config) {
	if o < maxRetryAfterOption(time.Second) {
		panic(fmt.Sprintf("shed: WithMaxRetryAfter: d must be at least 1s, got %v", time.Duration(o)))
	}
	c.maxRetryAfter = time.Duration(o)
}

// WithMaxRetryAfter caps the Retry-After sent with a shed request
// (default [DefaultMaxRetryAfter]). It panics if d is under 1s.
func WithMaxRetryAfter(d time.Duration) Option { return maxRetryAfterOption(d) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName sets the resilience.name attribute of the Shedder's telemetry.
func WithName(name string) Option { return nameOption(name) }

type meterOption struct{ mp metric.MeterProvider }

func (o meterOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the meter provider of the Shedder's metrics
// (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option { return meterOption{mp} }

type tracerOption struct{ tp trace.TracerProvider }

func (o tracerOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider whose spans get the
// Shedder's span events (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerOption{tp} }
