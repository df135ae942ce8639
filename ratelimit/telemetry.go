package ratelimit

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/resilience-go/resilience/internal/telemetry"
)

// telemetryState is the telemetry of a Limiter or Keyed, shared by the
// limiters of a Keyed. The limiter keeps no per-key telemetry.
type telemetryState struct {
	*telemetry.Policy
	// server reports the decisions on calls a server received (a limiter
	// in a gRPC server interceptor), under the server side's policy name,
	// as Middleware and Enforce do.
	server *telemetry.Policy
	waits  telemetry.WaitRecorder
}

func newTelemetry(c *config) *telemetryState {
	tel := telemetry.New(telemetry.KindRateLimit, c.tel)
	return &telemetryState{tel, telemetry.New(telemetry.KindRateLimitServer, c.tel),
		tel.Waits(telemetry.RateLimitWaitName,
			"Time calls waited for a rate-limit token, for calls that found none and waited for one.")}
}

// rejected reports a call turned away, the next token due in wait.
func (l *Limiter) rejected(ctx context.Context, wait time.Duration) {
	telemetry.NotSent(ctx)
	tel := l.tel.Policy
	if telemetry.Received(ctx) {
		tel = l.tel.server
	}
	tel.Count(ctx, telemetry.EventRejected)
	if s := tel.Span(ctx); s != nil {
		tel.AddEvent(s, telemetry.EventRejected,
			attribute.Float64(string(telemetry.RetryInKey), wait.Seconds()))
	}
}
