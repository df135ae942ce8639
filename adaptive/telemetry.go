package adaptive

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// Telemetry names of the limiter (see the module's docs/telemetry.md).
const (
	kind      = "adaptive"                          // resilience.policy
	limitName = "resilience.adaptive.limit"         // the gauge of the current limit
	waitName  = "resilience.adaptive.wait.duration" // queue waits
)

// telemetryState is the telemetry of a Limiter or Keyed, shared by the
// limiters of a Keyed.
type telemetryState struct {
	*telemetry.Policy
	waits telemetry.WaitRecorder
}

func newTelemetry(c *config) *telemetryState {
	tel := telemetry.New(kind, c.tel)
	return &telemetryState{tel, tel.Waits(waitName,
		"Time calls waited in an adaptive limiter's queue, for calls that got a slot after waiting.")}
}

// setFor gives l the attribute set of its limit gauge.
func (t *telemetryState) setFor(l *Limiter, target string) { l.set = limitSet(t, target) }

// limitSet returns the attribute set of resilience.adaptive.limit for one
// limiter: its name and, when keyed by target, the target's server.address
// and server.port (unless WithoutServerAddress).
func limitSet(tel *telemetryState, target string) attribute.Set {
	attrs := append([]attribute.KeyValue(nil), tel.NameAttrs()...)
	attrs = append(attrs, tel.ServerAttrs(target)...)
	return attribute.NewSet(attrs...)
}

// observeLimit creates resilience.adaptive.limit and has f report it for
// owner at each collection, while owner is reachable.
func observeLimit[T any](tel *telemetryState, owner *T, f func(*T, metric.Observer, metric.Int64Observable)) {
	if !tel.Metrics() {
		return
	}
	g, _ := tel.Meter().Int64ObservableGauge(limitName,
		metric.WithUnit("{call}"),
		metric.WithDescription("The current limit of an adaptive concurrency limiter: how many calls it lets run at once."))
	telemetry.Observe(tel.Policy, owner, func(owner *T, o metric.Observer) { f(owner, o, g) }, g)
}

// observe reports the limiter's limit.
func (l *Limiter) observe(o metric.Observer, g metric.Int64Observable) {
	o.ObserveInt64(g, l.limit.Load(), metric.WithAttributeSet(l.set))
}

// observe reports the keyed limiters' limits: per limiter when keys are
// targets recorded as server.address, summed otherwise, so that no key
// becomes an attribute value. Evicted keys are not reported.
func (k *Keyed) observe(o metric.Observer, g metric.Int64Observable) {
	if k.summed {
		var n int64
		k.reg.Each(func(_ string, l *Limiter) { n += l.limit.Load() })
		o.ObserveInt64(g, n, metric.WithAttributeSet(k.set))
		return
	}
	type point struct {
		n   int64
		set attribute.Set
	}
	var ps []point
	k.reg.Each(func(_ string, l *Limiter) { ps = append(ps, point{l.limit.Load(), l.set}) })
	for _, p := range ps {
		o.ObserveInt64(g, p.n, metric.WithAttributeSet(p.set))
	}
}

// rejected reports a call turned away.
func (t *telemetryState) rejected(ctx context.Context, limit int, reason string) {
	t.CountWith(ctx, telemetry.EventRejected, telemetry.ReasonKey.String(reason))
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventRejected, telemetry.LimitKey.Int(limit), telemetry.ReasonKey.String(reason))
	}
}

// waited reports that a call waited d in the queue for its slot.
func (t *telemetryState) waited(ctx context.Context, d time.Duration) { t.waits.Record(ctx, d) }
