package budget

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// Defaults of a [Budget] built with no options.
const (
	DefaultCapacity = 500 // tokens; the budget starts full
	DefaultCost     = 5   // tokens a retry or hedge costs
	DefaultReward   = 1   // tokens a successful call earns
)

// An Option configures a [Budget].
type Option interface{ apply(*config) }

// Defaults of the registry of a Budget built with [NewKeyed].
const (
	DefaultMaxKeys     = 10_000
	DefaultIdleTimeout = 10 * time.Minute
)

type config struct {
	capacity, cost, reward int64
	tel                    telemetry.Config
	key                    func(context.Context) string // nil: the call's target
	maxKeys                int
	idle                   time.Duration
	keyedOnly              string // the name of the last NewKeyed-only option given
	keySet                 bool   // WithKey given
}

func defaultConfig() config {
	return config{capacity: DefaultCapacity, cost: DefaultCost, reward: DefaultReward, maxKeys: DefaultMaxKeys, idle: DefaultIdleTimeout}
}

type capacityOption int

func (o capacityOption) apply(c *config) { c.capacity = int64(o) }

// WithCapacity sets the most tokens the budget holds, and starts with
// (default 500): how many retries a burst of failures may spend, cost
// times over, before successes pay for more. New panics unless
// capacity >= cost.
func WithCapacity(tokens int) Option { return capacityOption(tokens) }

type costOption int

func (o costOption) apply(c *config) { c.cost = int64(o) }

// WithCost sets how many tokens a retry or hedge costs (default 5). The
// ratio of reward to cost is the share of calls that may be retried in
// vain for ever: 1/5 by default. New panics if tokens < 1.
func WithCost(tokens int) Option { return costOption(tokens) }

type rewardOption int

func (o rewardOption) apply(c *config) { c.reward = int64(o) }

// WithReward sets how many tokens a successful call earns (default 1).
// New panics if tokens < 1.
func WithReward(tokens int) Option { return rewardOption(tokens) }

type nameOption string

func (o nameOption) apply(c *config) { c.tel.Name = string(o) }

// WithName names the budget in its telemetry (the resilience.name
// attribute of resilience.budget.tokens).
func WithName(name string) Option { return nameOption(name) }

type meterProviderOption struct{ mp metric.MeterProvider }

func (o meterProviderOption) apply(c *config) { c.tel.MeterProvider = o.mp }

// WithMeterProvider sets the provider of the budget's gauge. The default is
// the global provider as it is when the budget is built.
func WithMeterProvider(mp metric.MeterProvider) Option { return meterProviderOption{mp} }

type noServerAddressOption struct{}

func (noServerAddressOption) apply(c *config) { c.tel.NoServerAddress = true }

// WithoutServerAddress leaves server.address off the gauge of a Budget
// built with [NewKeyed], which then reports the lowest level of all its
// keys as one series, so that the series stay bounded however many hosts
// it sees. A Budget built with New has no server.address anyway.
func WithoutServerAddress() Option { return noServerAddressOption{} }

type keyOption func(context.Context) string

func (o keyOption) apply(c *config) { c.key, c.keyedOnly, c.keySet = o, "WithKey", true }

// WithKey sets the key of each call's budget, for [NewKeyed], instead of
// the call's target host. A call whose key is empty spends from the
// budget of the calls without a key. f must be safe for concurrent use.
// NewKeyed panics if f is nil.
func WithKey(f func(ctx context.Context) string) Option { return keyOption(f) }

type maxKeysOption int

func (o maxKeysOption) apply(c *config) { c.maxKeys, c.keyedOnly = int(o), "WithMaxKeys" }

// WithMaxKeys bounds how many keys a Budget built with [NewKeyed] keeps
// (default 10,000): past it, the least recently used are forgotten.
// NewKeyed panics if n < 1.
func WithMaxKeys(n int) Option { return maxKeysOption(n) }

type idleOption time.Duration

func (o idleOption) apply(c *config) { c.idle, c.keyedOnly = time.Duration(o), "WithIdleTimeout" }

// WithIdleTimeout sets how long a Budget built with [NewKeyed] keeps the
// budget of a key no call used (default 10 minutes); a forgotten key's
// budget starts full again. NewKeyed panics if d <= 0.
func WithIdleTimeout(d time.Duration) Option { return idleOption(d) }

func (c *config) validate() {
	switch {
	case c.keySet && c.key == nil:
		panic("budget: WithKey: f is nil")
	case c.maxKeys < 1:
		panic(fmt.Sprintf("budget: WithMaxKeys: n must be at least 1, got %d", c.maxKeys))
	case c.idle <= 0:
		panic(fmt.Sprintf("budget: WithIdleTimeout: d must be positive, got %v", c.idle))
	case c.cost < 1:
		panic(fmt.Sprintf("budget: WithCost: tokens must be at least 1, got %d", c.cost))
	case c.reward < 1:
		panic(fmt.Sprintf("budget: WithReward: tokens must be at least 1, got %d", c.reward))
	case c.capacity < c.cost:
		panic(fmt.Sprintf("budget: WithCapacity: tokens must be at least the cost %d, got %d", c.cost, c.capacity))
	}
}
