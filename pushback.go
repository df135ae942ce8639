package resilience

import (
	"context"
	"time"
)

// ReportPushback records, for the attempt running in ctx, that the
// dependency asked that no further call be sent to it for d, although the
// attempt itself may have succeeded: an HTTP response whose RateLimit
// header says no quota is left, for example. Policies that hold later calls
// to the same dependency (a pushback gate) read it with [ReportedPushback]
// once the operation has returned. A failed attempt's pushback is carried
// by its error instead ([MarkRetryAfter]).
//
// Only the longest pushback reported for an attempt is kept. A negative d
// is treated as zero. Outside any call ReportPushback does nothing.
func ReportPushback(ctx context.Context, d time.Duration) {
	a := attemptFrom(ctx)
	if a == nil {
		return
	}
	d = max(d, 0)
	a.mu.Lock()
	if !a.has(flagPushed) || d > a.pushback {
		a.pushback = d
		a.set(flagPushed)
	}
	a.mu.Unlock()
}

// ReportedPushback returns the pushback reported with [ReportPushback] for
// the attempt running in ctx. ok is false when none was reported.
func ReportedPushback(ctx context.Context) (d time.Duration, ok bool) {
	a := attemptFrom(ctx)
	if a == nil {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pushback, a.has(flagPushed)
}
