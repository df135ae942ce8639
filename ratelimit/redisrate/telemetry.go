package redisrate

import (
	"context"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// telemetryState reports the limiter's dealings with Redis; the decisions
// themselves are reported by ratelimit.Middleware and ratelimit.Enforce.
type telemetryState struct {
	*telemetry.Policy
}

func newTelemetry(c *config) *telemetryState {
	return &telemetryState{telemetry.New(telemetry.KindRateLimitServer, c.tel)}
}

// storeError reports a Redis call that failed.
func (t *telemetryState) storeError(ctx context.Context, err error) {
	t.Count(ctx, telemetry.EventStoreError)
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventStoreError, telemetry.ReasonKey.String(err.Error()))
	}
}

// fallback reports a decision taken without Redis.
func (t *telemetryState) fallback(ctx context.Context, m Mode) {
	t.Count(ctx, telemetry.EventDegraded)
	if s := t.Span(ctx); s != nil {
		t.AddEvent(s, telemetry.EventDegraded, telemetry.ModeKey.String(m.String()))
	}
}

// recovered reports the end of an outage.
func (t *telemetryState) recovered(ctx context.Context) {
	t.Event(ctx, telemetry.EventRecovered)
}
