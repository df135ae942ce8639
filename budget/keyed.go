package budget

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/keyed"
	"github.com/resilience-go/resilience/internal/telemetry"
)

// keys is the per-key part of a Budget built with NewKeyed.
type keys struct {
	key func(context.Context) string // nil: the call's target
	reg *keyed.Registry[*Budget]
}

// NewKeyed returns a Budget that keeps a budget of its own per key, by
// default per call target (resilience.Call.Target, the host), each
// configured by opts: one host's outage, or the hedges sent to one host,
// spend that host's budget and leave the others' alone. The retry and hedge
// policies reach the budget of each call through [Budget.For]; the
// Budget's own methods, and For outside any call or key, act on the budget
// of the calls that have no key.
//
// The budgets live in a bounded registry: at most [WithMaxKeys] keys
// (10,000 by default), and a key idle for [WithIdleTimeout] (10 minutes)
// is forgotten; a forgotten key's budget starts full again. It panics,
// naming the option, if an option's value is invalid.
//
// Keyed by target, resilience.budget.tokens reports each key's level with
// its server.address, and the budget of the calls without a key with none;
// with [WithKey] (whose keys may be anything) or [WithoutServerAddress] it
// reports one level, the lowest of all: the budget closest to running out.
func NewKeyed(opts ...Option) *Budget {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	c.validate()
	b := newBudget(&c, telemetry.New(telemetry.KindBudget, c.tel))
	b.keys = &keys{key: c.key}
	b.keys.reg = keyed.New(c.maxKeys, c.idle, func(string) *Budget { return newBudget(&c, nil) })
	if b.tel.Metrics() {
		g, _ := b.tel.Meter().Int64ObservableGauge(telemetry.BudgetTokensName, gaugeOpts...)
		capacity, _ := b.tel.Meter().Int64ObservableGauge(telemetry.BudgetCapacityName, capacityOpts...)
		aggregate := c.key != nil || b.tel.ServerAddressOff()
		telemetry.Observe(b.tel, b, func(b *Budget, o metric.Observer) {
			// Every key's budget has the same capacity: one series.
			o.ObserveInt64(capacity, b.capacity, b.attrs)
			if aggregate {
				lowest := b.level.Load()
				b.keys.reg.Each(func(_ string, v *Budget) { lowest = min(lowest, v.level.Load()) })
				o.ObserveInt64(g, lowest, b.attrs)
				return
			}
			o.ObserveInt64(g, b.level.Load(), b.attrs)
			b.keys.reg.Each(func(key string, v *Budget) {
				attrs := append(b.tel.NameAttrs()[:len(b.tel.NameAttrs()):len(b.tel.NameAttrs())], b.tel.ServerAttrs(key)...)
				o.ObserveInt64(g, v.level.Load(), metric.WithAttributeSet(attribute.NewSet(attrs...)))
			})
		}, g, capacity)
	}
	return b
}

// For returns the budget of the call in ctx: for a Budget built with
// [NewKeyed], the budget of the call's key (made on first use), or b itself
// when the call has no key; any other Budget, nil included, returns
// itself. Policies call it once per decision, and spend or credit what it
// returns.
func (b *Budget) For(ctx context.Context) *Budget {
	if b == nil || b.keys == nil {
		return b
	}
	var key string
	if b.keys.key != nil {
		key = b.keys.key(ctx)
	} else if c, ok := resilience.CallFrom(ctx); ok {
		key = c.Target
	}
	if key == "" {
		return b
	}
	// The entry is not held past the lookup: a budget is a few atomic
	// counters, and one evicted while a call still spends from it only
	// loses that call's tokens.
	e := b.keys.reg.Acquire(key)
	b.keys.reg.Release(e)
	return e.Value
}

// Len returns the number of keys that have a budget of their own: 0 for a
// Budget not built with [NewKeyed].
func (b *Budget) Len() int {
	if b == nil || b.keys == nil {
		return 0
	}
	return b.keys.reg.Len()
}
