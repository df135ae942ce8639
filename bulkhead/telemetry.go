package bulkhead

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// telemetryState is the telemetry of a Bulkhead or Keyed, shared by the
// bulkheads of a Keyed.
type telemetryState struct {
	*telemetry.Policy
	waits telemetry.WaitRecorder
}

func newTelemetry(c *config) *telemetryState {
	tel := telemetry.New(telemetry.KindBulkhead, c.tel)
	return &telemetryState{tel, tel.Waits(telemetry.BulkheadWaitName,
		"Time calls waited for a bulkhead slot, for calls that found the bulkhead full and got a slot.")}
}

// inFlightSet returns the attribute set of resilience.bulkhead.in_flight
// for one bulkhead: its name and, when keyed by target, the target's
// server.address and server.port (unless WithoutServerAddress).
func inFlightSet(tel *telemetryState, target string) attribute.Set {
	attrs := append([]attribute.KeyValue(nil), tel.NameAttrs()...)
	attrs = append(attrs, tel.ServerAttrs(target)...)
	return attribute.NewSet(attrs...)
}

// gauges are the observable instruments of a bulkhead.
type gauges struct {
	inFlight metric.Int64Observable // resilience.bulkhead.in_flight
	limit    metric.Int64Observable // resilience.bulkhead.limit
}

// observeInFlight creates resilience.bulkhead.in_flight and
// resilience.bulkhead.limit and has f report them for owner at each
// collection, while owner is reachable.
func observeInFlight[T any](tel *telemetryState, owner *T, f func(*T, metric.Observer, gauges)) {
	if !tel.Metrics() {
		return
	}
	var g gauges
	g.inFlight, _ = tel.Meter().Int64ObservableUpDownCounter(telemetry.BulkheadInFlightName,
		metric.WithUnit("{call}"),
		metric.WithDescription("Calls holding a bulkhead slot, until their result is done."))
	g.limit, _ = tel.Meter().Int64ObservableGauge(telemetry.BulkheadLimitName,
		metric.WithUnit("{call}"),
		metric.WithDescription("Slots of a bulkhead (summed like resilience.bulkhead.in_flight), so that its saturation is in_flight / limit."))
	telemetry.Observe(tel.Policy, owner, func(owner *T, o metric.Observer) { f(owner, o, g) }, g.inFlight, g.limit)
}

// observe reports the keyed bulkheads' calls in flight and slots: per
// bulkhead when keys are targets recorded as server.address, summed
// otherwise, so that no key becomes an attribute value. Evicted keys are
// not in the registry, so they are not reported.
func (k *Keyed) observe(o metric.Observer, g gauges) {
	if k.summed {
		var n, limit int64
		k.reg.Each(func(_ string, b *Bulkhead) {
			n += b.inFlight.Load()
			limit += int64(b.limit)
		})
		set := metric.WithAttributeSet(k.set)
		o.ObserveInt64(g.inFlight, n, set)
		o.ObserveInt64(g.limit, limit, set)
		return
	}
	type point struct {
		n, limit int64
		set      attribute.Set
	}
	var ps []point
	k.reg.Each(func(_ string, b *Bulkhead) { ps = append(ps, point{b.inFlight.Load(), int64(b.limit), b.set}) })
	for _, p := range ps {
		set := metric.WithAttributeSet(p.set)
		o.ObserveInt64(g.inFlight, p.n, set)
		o.ObserveInt64(g.limit, p.limit, set)
	}
}

// rejected reports a call turned away.
func (b *Bulkhead) rejected(ctx context.Context) {
	b.tel.Count(ctx, telemetry.EventRejected)
	if s := b.tel.Span(ctx); s != nil {
		b.tel.AddEvent(s, telemetry.EventRejected,
			telemetry.LimitKey.Int(b.limit),
			attribute.Float64(string(telemetry.WaitKey), b.maxWait.Seconds()))
	}
}

// waited reports that a call waited d for its slot.
func (b *Bulkhead) waited(ctx context.Context, d time.Duration) { b.tel.waits.Record(ctx, d) }
