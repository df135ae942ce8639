package ratelimit

import (
	"context"

	"go.opentelemetry.io/otel/attribute"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// serverTelemetry is the telemetry of a [Middleware] or an [Enforce]
// policy: one event per request, allowed or rejected, and one per request
// an admitter could not decide.
type serverTelemetry struct {
	*telemetry.Policy
}

func newServerTelemetry(c *config) *serverTelemetry {
	return &serverTelemetry{telemetry.New(telemetry.KindRateLimitServer, c.tel)}
}

// on reports whether anything is recorded at all.
func (t *serverTelemetry) on() bool {
	return t.Metrics() || t.Tracer() != nil
}

// decided reports one admitter's decision (Enforce).
func (t *serverTelemetry) decided(ctx context.Context, d Decision) {
	if d.Allowed {
		t.allowed(ctx, []Decision{d})
	} else {
		t.rejected(ctx, d)
	}
}

func (t *serverTelemetry) allowed(ctx context.Context, ds []Decision) {
	t.Count(ctx, telemetry.EventAllowed)
	if s := t.Span(ctx); s != nil {
		// The quota closest to running out.
		var tight *Decision
		for i := range ds {
			if ds[i].Quota != (Quota{}) && (tight == nil || ds[i].Remaining < tight.Remaining) {
				tight = &ds[i]
			}
		}
		if tight == nil {
			t.AddEvent(s, telemetry.EventAllowed)
			return
		}
		t.AddEvent(s, telemetry.EventAllowed,
			telemetry.QuotaKey.String(tight.Quota.Name), telemetry.RemainingKey.Int64(tight.Remaining))
	}
}

func (t *serverTelemetry) rejected(ctx context.Context, d Decision) {
	t.Count(ctx, telemetry.EventRejected)
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventRejected,
			telemetry.QuotaKey.String(d.Quota.Name),
			attribute.Float64(string(telemetry.RetryInKey), d.RetryAfter.Seconds()))
	}
}

func (t *serverTelemetry) unavailable(ctx context.Context, err error) {
	t.Count(ctx, telemetry.EventStoreError)
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventStoreError, telemetry.ReasonKey.String(err.Error()))
	}
}
