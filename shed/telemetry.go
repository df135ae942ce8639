package shed

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// shedTelemetry is the telemetry of a Shedder: every request shed counted
// with its reason and priority, every request queued, the waits of the
// requests admitted from the queue, and the requests in flight and queued
// at each collection.
type shedTelemetry struct {
	*telemetry.Policy
	waits telemetry.WaitRecorder
}

func newShedTelemetry(s *Shedder, c *config) *shedTelemetry {
	tel := telemetry.New(telemetry.KindShed, c.tel)
	t := &shedTelemetry{Policy: tel, waits: tel.Waits(telemetry.ShedWaitName,
		"Time requests waited in a load shedder's queue, for requests admitted after waiting.")}
	if tel.Metrics() {
		inFlight, _ := tel.Meter().Int64ObservableUpDownCounter(telemetry.ShedInFlightName,
			metric.WithUnit("{request}"),
			metric.WithDescription("Requests a load shedder admitted that have not finished."))
		queued, _ := tel.Meter().Int64ObservableUpDownCounter(telemetry.ShedQueuedName,
			metric.WithUnit("{request}"),
			metric.WithDescription("Requests waiting in a load shedder's queue."))
		set := metric.WithAttributeSet(attribute.NewSet(tel.NameAttrs()...))
		telemetry.Observe(tel, s, func(s *Shedder, o metric.Observer) {
			running, waiting := s.InFlight()
			o.ObserveInt64(inFlight, int64(running), set)
			o.ObserveInt64(queued, int64(waiting), set)
		}, inFlight, queued)
	}
	return t
}

func (t *shedTelemetry) rejected(ctx context.Context, e *RejectedError) {
	prio := telemetry.PriorityKey.String(e.Priority.String())
	reason := telemetry.ReasonKey.String(string(e.Reason))
	t.CountWith(ctx, telemetry.EventRejected, reason, prio)
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventRejected, reason, prio,
			attribute.Float64(string(telemetry.RetryInKey), e.RetryAfter.Seconds()))
	}
}

func (t *shedTelemetry) queued(ctx context.Context, p Priority) {
	prio := telemetry.PriorityKey.String(p.String())
	t.CountWith(ctx, telemetry.EventQueued, prio)
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventQueued, prio)
	}
}

func (t *shedTelemetry) waited(ctx context.Context, d time.Duration) {
	t.waits.Record(ctx, d)
}
