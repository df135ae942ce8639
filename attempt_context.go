package resilience

import "context"

// AttemptContext returns the context the attempt running in ctx began
// with: the one [StartAttempt] returned to the policy that started it (a
// retry), before the policies inside the attempt derived theirs from it.
// Its deadline and end are those from outside the attempt (the caller's, a
// total timeout's), without a per-attempt timeout's. ok is false outside
// any attempt started by StartAttempt.
//
// An adapter uses it where the two must be told apart: a gRPC client
// stream is bounded by the deadlines outside the attempt while the client
// is still sending, and by a per-attempt timeout only once it has
// finished.
func AttemptContext(ctx context.Context) (actx context.Context, ok bool) {
	a := attemptFrom(ctx)
	if a == nil || !a.has(flagAttempt) {
		return nil, false
	}
	return a, true
}
