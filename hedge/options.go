package hedge

import (
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience/budget"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Policy] built with no options.
const (
	DefaultDelay     = 30 * time.Millisecond // chosen by the scenario suite: p99 63ms at 1.26 attempts per call in a 20% slow tail
	DefaultMaxHedges = 1
)

// An Option configures a [Policy].
type Option interface{ apply(*config) }

type config struct {
	delay     time.Duration
	adaptive  bool // WithDelayQuantile
	quantile  float64
	window    int
	maxHedges int
	budget    *budget.Budget
	tel       telemetry.Config
}

type delayOption time.Duration

func (o delayOption) apply(c *config) { c.delay = time.Duration(o) }

// WithDelay sets how long an attempt may run before the next one is sent
// beside it (default 30ms). With [WithDelayQuantile] it is the delay used
// until enough latencies were observed. New panics if d <= 0.
func WithDelay(d time.Duration) Option { return delayOption(d) }

type quantileOption struct {
	q      float64
	window int
}

func (o quantileOption) apply(c *config) { c.adaptive, c.quantile, c.window = true, o.q, o.window }

// WithDelayQuantile makes the delay follow the dependency: it is the q
// quantile of the latencies of the last window first attempts, so that
// about 1-q of the calls are hedged. A first attempt cancelled because a
// hedge won counts with the time it ran, a lower bound of its latency. Use
// a q below the share of calls that are fast: with 20% of calls in a slow
// tail, q = 0.9 would land in the tail and hedge nothing in time. Until 20
// latencies (or window, if smaller) were observed, the delay is
// [WithDelay]'s. New panics unless 0 < q < 1 and window >= 1.
func WithDelayQuantile(q float64, window int) Option { return quantileOption{q, window} }

type maxHedgesOption int

func (o maxHedgesOption) apply(c *config) { c.maxHedges = int(o) }

// WithMaxHedges sets how many attempts may be sent beside the first
// (default 1). New panics if n < 1.
func WithMaxHedges(n int) Option { return maxHedgesOption(n) }

type budgetOption struct{ b *budget.Budget }

func (o budgetOption) apply(c *config) { c.budget = o.b }

// WithBudget makes every hedge pay for itself from b, a retry budget that
// may be shared with a retry policy (see package budget): a hedge takes
// its cost from b before it is sent and is not sent when b has too few
// tokens; a hedge that wins gets its cost back, and every successful call
// credits b. With a budget from budget.NewKeyed, each call spends from and
// credits the budget of its host (b.For). Nil, the default, sets no
// budget.
func WithBudget(b *budget.Budget) Option { return budgetOption{b} }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the policy in its telemetry (the resilience.name
// attribute).
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the policy's metrics. The default
// is the global provider as it is when the policy is built.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves the server.address and server.port
// attributes off the policy's metrics (its events and attempt durations),
// so that their series stay bounded however many hosts it sees. Span
// events are not affected.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type tracerProviderOption struct{ tp trace.TracerProvider }

func (o tracerProviderOption) apply(c *config) { c.tel.TracerProvider = o.tp }

// WithTracerProvider sets the tracer provider of the policy, whose
// decisions are added as events to the recording span in the call's
// context. The default is the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option { return tracerProviderOption{tp} }

func (c *config) validate() {
	switch {
	case c.delay <= 0:
		panic(fmt.Sprintf("hedge: WithDelay: d must be positive, got %v", c.delay))
	case c.adaptive && !(c.quantile > 0 && c.quantile < 1):
		panic(fmt.Sprintf("hedge: WithDelayQuantile: q must be in (0, 1), got %v", c.quantile))
	case c.adaptive && c.window < 1:
		panic(fmt.Sprintf("hedge: WithDelayQuantile: window must be at least 1, got %d", c.window))
	case c.maxHedges < 1:
		panic(fmt.Sprintf("hedge: WithMaxHedges: n must be at least 1, got %d", c.maxHedges))
	}
}
