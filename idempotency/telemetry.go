package idempotency

import (
	"context"
	"errors"

	"github.com/resilience-go/resilience/internal/telemetry"
)

const (
	eventStamped    = telemetry.EventStamped
	eventReplayed   = telemetry.EventReplayed
	eventConflict   = telemetry.EventConflict
	eventMismatch   = telemetry.EventMismatch
	eventRejected   = telemetry.EventRejected
	eventStoreError = "store_error" // as ratelimit's shared store reports it
	eventReleased   = telemetry.EventReleased
)

// telemetryState is the telemetry of a Guard or a Keyer.
type telemetryState struct{ *telemetry.Policy }

func newTelemetry(c telemetry.Config) *telemetryState {
	return &telemetryState{telemetry.New(telemetry.KindIdempotency, c)}
}

// event counts ev, with resilience.reason when reason is not empty (reasons
// come from a small fixed set), and adds its span event.
func (t *telemetryState) event(ctx context.Context, ev, reason string) {
	if reason == "" {
		t.Count(ctx, ev)
	} else {
		t.CountWith(ctx, ev, telemetry.ReasonKey.String(reason))
	}
	if s := t.Span(ctx); s != nil {
		if reason == "" {
			t.AddEvent(s, ev)
		} else {
			t.AddEvent(s, ev, telemetry.ReasonKey.String(reason))
		}
	}
}

// storeError reports a failed store operation op ("reserve", "complete",
// "release"); a reservation that lost its lease is reported as the reason
// "lease_lost".
func (t *telemetryState) storeError(ctx context.Context, op string, err error) {
	if errors.Is(err, ErrLeaseLost) {
		op = "lease_lost"
	}
	t.event(ctx, eventStoreError, op)
}
