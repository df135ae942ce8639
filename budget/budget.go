package budget

import (
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// ErrExhausted is the reason a retry or hedge was not attempted: the budget
// had too few tokens left. The retry and hedge policies return it inside
// their errors, next to the last attempt's error.
var ErrExhausted = errors.New("budget: retry budget exhausted")

// A Budget is a token quota shared by the calls of a pipeline; see the
// package documentation for the model. Build it with [New]. It is safe for
// concurrent use and takes no lock.
//
// Policies call TryWithdraw before each retry or hedge, Deposit when a call
// succeeds, and Refund when a retry or hedge they paid for succeeded. A nil
// *Budget, like the zero Budget, places no limit.
type Budget struct {
	level                  atomic.Int64
	capacity, cost, reward int64
	tel                    *telemetry.Policy
	attrs                  metric.MeasurementOption // of the gauge
	keys                   *keys                    // NewKeyed only
}

// New returns a full budget configured by opts. It panics, naming the
// option, if an option's value is invalid, or if it is given an option of
// [NewKeyed] only (WithKey, WithMaxKeys, WithIdleTimeout).
func New(opts ...Option) *Budget {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	if c.keyedOnly != "" {
		panic("budget: " + c.keyedOnly + " applies to NewKeyed only")
	}
	c.validate()
	b := newBudget(&c, telemetry.New(telemetry.KindBudget, c.tel))
	if b.tel.Metrics() {
		g, _ := b.tel.Meter().Int64ObservableGauge(telemetry.BudgetTokensName, gaugeOpts...)
		capacity, _ := b.tel.Meter().Int64ObservableGauge(telemetry.BudgetCapacityName, capacityOpts...)
		telemetry.Observe(b.tel, b, func(b *Budget, o metric.Observer) {
			o.ObserveInt64(g, b.level.Load(), b.attrs)
			o.ObserveInt64(capacity, b.capacity, b.attrs)
		}, g, capacity)
	}
	return b
}

// gaugeOpts describe resilience.budget.tokens.
var gaugeOpts = []metric.Int64ObservableGaugeOption{
	metric.WithUnit("{token}"),
	metric.WithDescription("Tokens left in a retry budget: each retry or hedge costs some, each successful call earns some back."),
}

// capacityOpts describe resilience.budget.capacity.
var capacityOpts = []metric.Int64ObservableGaugeOption{
	metric.WithUnit("{token}"),
	metric.WithDescription("Tokens a retry budget holds when full, so that the share left is resilience.budget.tokens / resilience.budget.capacity."),
}

// newBudget returns a full budget configured by c, with telemetry tel (nil
// for a keyed budget's per-key ones, which the keyed budget reports).
func newBudget(c *config, tel *telemetry.Policy) *Budget {
	b := &Budget{capacity: c.capacity, cost: c.cost, reward: c.reward, tel: tel}
	b.level.Store(c.capacity)
	if tel.Metrics() {
		b.attrs = metric.WithAttributeSet(attribute.NewSet(tel.NameAttrs()...))
	}
	return b
}

// TryWithdraw takes the cost of one retry or hedge and reports true, or
// reports false and takes nothing when fewer tokens are left than it costs.
func (b *Budget) TryWithdraw() bool {
	if b == nil {
		return true
	}
	for {
		l := b.level.Load()
		if l < b.cost {
			return false
		}
		if b.level.CompareAndSwap(l, l-b.cost) {
			return true
		}
	}
}

// Deposit credits the reward of one successful call, up to the capacity.
func (b *Budget) Deposit() {
	if b != nil {
		b.add(b.reward)
	}
}

// Refund gives back the cost of one retry or hedge that succeeded, up to
// the capacity. Call it in addition to [Budget.Deposit].
func (b *Budget) Refund() {
	if b != nil {
		b.add(b.cost)
	}
}

func (b *Budget) add(n int64) {
	for {
		l := b.level.Load()
		if l >= b.capacity {
			return // full: no write, so a healthy pipeline shares nothing
		}
		if b.level.CompareAndSwap(l, min(l+n, b.capacity)) {
			return
		}
	}
}

// Tokens returns the number of tokens left. A nil *Budget has none.
func (b *Budget) Tokens() int {
	if b == nil {
		return 0
	}
	return int(b.level.Load())
}
