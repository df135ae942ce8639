package budget

import (
	"fmt"

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

type config struct {
	capacity, cost, reward int64
	tel                    telemetry.Config
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

func (c *config) validate() {
	switch {
	case c.cost < 1:
		panic(fmt.Sprintf("budget: WithCost: tokens must be at least 1, got %d", c.cost))
	case c.reward < 1:
		panic(fmt.Sprintf("budget: WithReward: tokens must be at least 1, got %d", c.reward))
	case c.capacity < c.cost:
		panic(fmt.Sprintf("budget: WithCapacity: tokens must be at least the cost %d, got %d", c.cost, c.capacity))
	}
}
