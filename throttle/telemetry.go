package throttle

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// Telemetry names of the throttle (see the module's docs/telemetry.md).
const (
	kind            = "throttle"                        // resilience.policy
	probabilityName = "resilience.throttle.probability" // the gauge of the rejection probability
	// probabilityKey is the span events' attribute of the probability a
	// rejected call drew against.
	probabilityKey = attribute.Key("resilience.probability")
)

// telemetryState is the telemetry of a Throttle or Keyed, shared by the
// throttles of a Keyed.
type telemetryState struct{ *telemetry.Policy }

func newTelemetry(c *config) *telemetryState {
	return &telemetryState{telemetry.New(kind, c.tel)}
}

// probabilitySet returns the attribute set of the probability gauge for one
// throttle: its name and, when keyed by target, the target's
// server.address and server.port (unless WithoutServerAddress).
func probabilitySet(tel *telemetryState, target string) attribute.Set {
	attrs := append([]attribute.KeyValue(nil), tel.NameAttrs()...)
	attrs = append(attrs, tel.ServerAttrs(target)...)
	return attribute.NewSet(attrs...)
}

// observeProbability creates resilience.throttle.probability and has f
// report it for owner at each collection, while owner is reachable.
func observeProbability[T any](tel *telemetryState, owner *T, f func(*T, metric.Observer, metric.Float64Observable)) {
	if !tel.Metrics() {
		return
	}
	g, _ := tel.Meter().Float64ObservableGauge(probabilityName,
		metric.WithUnit("1"),
		metric.WithDescription("The probability with which an adaptive client-side throttle turns calls away."))
	telemetry.Observe(tel.Policy, owner, func(owner *T, o metric.Observer) { f(owner, o, g) }, g)
}

func (t *Throttle) observe(o metric.Observer, g metric.Float64Observable) {
	o.ObserveFloat64(g, t.Probability(), metric.WithAttributeSet(t.set))
}

// observe reports the keyed throttles' probabilities: per throttle when
// keys are targets recorded as server.address, the highest otherwise, so
// that no key becomes an attribute value. Evicted keys are not reported.
func (k *Keyed) observe(o metric.Observer, g metric.Float64Observable) {
	if k.summed {
		var p float64
		k.reg.Each(func(_ string, t *Throttle) { p = max(p, t.Probability()) })
		o.ObserveFloat64(g, p, metric.WithAttributeSet(k.set))
		return
	}
	type point struct {
		p   float64
		set attribute.Set
	}
	var ps []point
	k.reg.Each(func(_ string, t *Throttle) { ps = append(ps, point{t.Probability(), t.set}) })
	for _, p := range ps {
		o.ObserveFloat64(g, p.p, metric.WithAttributeSet(p.set))
	}
}

// rejected reports a call turned away with probability p.
func (t *telemetryState) rejected(ctx context.Context, p float64) {
	t.Count(ctx, telemetry.EventRejected)
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventRejected, probabilityKey.Float64(p))
	}
}
