package breaker

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// stateNames are the values of resilience.breaker.state, by State.
var stateNames = [3]string{Closed: "closed", Open: "open", HalfOpen: "half_open"}

// stateSets returns the attribute sets of resilience.breaker.state for one
// breaker: its name, its state and, for a breaker keyed by target, the
// target's server.address and server.port (breakers are keyed by host and
// port). It returns nil when metrics are off.
func stateSets(tel *telemetry.Policy, target string) *[3]attribute.Set {
	if !tel.Metrics() {
		return nil
	}
	var sets [3]attribute.Set
	for s, name := range stateNames {
		attrs := append([]attribute.KeyValue{telemetry.BreakerStateKey.String(name)}, tel.NameAttrs()...)
		attrs = append(attrs, tel.ServerAttrs(target)...)
		sets[s] = attribute.NewSet(attrs...)
	}
	return &sets
}

// observeStates creates resilience.breaker.state and has f report it for
// owner at each collection, while owner is reachable.
func observeStates[T any](tel *telemetry.Policy, owner *T, f func(*T, metric.Observer, metric.Int64Observable)) {
	if !tel.Metrics() {
		return
	}
	g, _ := tel.Meter().Int64ObservableGauge(telemetry.BreakerStateName,
		metric.WithUnit("{breaker}"),
		metric.WithDescription("Number of circuit breakers in each state: a single breaker reports 1 for its current state and 0 for the other two."))
	telemetry.Observe(tel, owner, func(owner *T, o metric.Observer) { f(owner, o, g) }, g)
}

// observe reports the breaker's state at each collection: 1 for its
// current state and 0 for the other two, as OpenTelemetry's state metrics
// do, so that each state's series is continuous (a series that is not
// observed is not exported, and a Prometheus series that is not scraped
// goes stale while another state's carries on). It reads the breaker's
// state only, so it calls no user code: a change it notices is delivered
// by the next call.
func (b *Breaker) observe(o metric.Observer, g metric.Int64Observable) {
	if b.states == nil {
		return
	}
	cur := fromGobreaker(b.cb.State())
	for s := range b.states {
		var v int64
		if State(s) == cur {
			v = 1
		}
		o.ObserveInt64(g, v, metric.WithAttributeSet(b.states[s]))
	}
}

// changed reports a state change.
func (b *Breaker) changed(ctx context.Context, from, to State) {
	var ev string
	switch to {
	case Open:
		ev = telemetry.EventOpened
	case HalfOpen:
		ev = telemetry.EventHalfOpened
	default:
		ev = telemetry.EventClosed
	}
	b.tel.Count(ctx, ev)
	if s := b.tel.Span(ctx); s != nil {
		b.tel.AddEvent(s, ev,
			telemetry.FromStateKey.String(stateNames[from]),
			telemetry.BreakerStateKey.String(stateNames[to]))
	}
}

// rejected reports a call turned away in state st, the next probe due in
// wait (zero when half-open).
func (b *Breaker) rejected(ctx context.Context, st State, wait time.Duration) {
	telemetry.NotSent(ctx)
	b.tel.Count(ctx, telemetry.EventRejected)
	if s := b.tel.Span(ctx); s != nil {
		b.tel.AddEvent(s, telemetry.EventRejected,
			telemetry.BreakerStateKey.String(stateNames[st]),
			attribute.Float64(string(telemetry.RetryInKey), wait.Seconds()))
	}
}

// observe reports the state of the keyed breakers: each breaker on its own
// when keys are targets, otherwise how many breakers are in each state, so
// that no key becomes an attribute value. Evicted keys are not in the
// registry any more, so they are not reported.
func (k *Keyed) observe(o metric.Observer, g metric.Int64Observable) {
	var bs []*Breaker
	k.reg.Each(func(_ string, b *Breaker) { bs = append(bs, b) })
	if k.states == nil {
		for _, b := range bs {
			b.observe(o, g)
		}
		return
	}
	var n [3]int64
	for _, b := range bs {
		n[fromGobreaker(b.cb.State())]++
	}
	for s := range n {
		o.ObserveInt64(g, n[s], metric.WithAttributeSet(k.states[s]))
	}
}
