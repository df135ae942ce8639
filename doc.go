// Package resilience keeps a service's outbound calls alive when a
// dependency misbehaves.
//
// A [Policy] runs an operation under one rule: a timeout, bounded retries, a
// circuit breaker, a bulkhead, a rate limit. Policies live in their own
// packages (timeout, retry, breaker, bulkhead, ratelimit) and compose with
// [Chain], outermost first:
//
//	p := resilience.Chain(
//		timeout.New(30*time.Second), // the whole call
//		retry.New(),                 // bounded retries with jitter
//		timeout.New(10*time.Second), // each attempt
//	)
//	user, err := resilience.Do(ctx, p, func(ctx context.Context) (*User, error) {
//		return fetchUser(ctx, id)
//	})
//
// Adapters apply the same policies to HTTP (package resiliencehttp) and gRPC
// (package resiliencegrpc) clients. They translate transport results into
// the vocabulary this package defines, so every policy reads one contract.
//
// # Outcomes
//
// An operation's error tells policies what happened. [Classify] maps it to a
// [Kind]: success, a transient failure worth retrying, a permanent failure,
// server or local pushback (throttling), a rejection by the dependency (an
// HTTP 4xx) or cancellation by the caller. Unmarked errors are transient;
// [Mark] and [MarkRetryAfter] say otherwise, and [RetryAfter] reads a
// server's requested delay. [MarkScopedRetryAfter] also says what the
// delay concerns ([PushbackScope]: the whole dependency, one request such
// as a 429 for one tenant's quota, or one call alone), which a policy that
// holds the dependency's other calls reads with [RetryAfterScope]. The
// caller's cancellation is never retried and never counted against a
// dependency.
//
// # Calls and attempts
//
// Adapters describe the call in the context with [WithCall]: its target, its
// method and whether it is idempotent. Policies read it with [CallFrom]; a
// retry policy never sends a non-idempotent call twice. Multi-attempt
// policies number attempts with [StartAttempt], read with [AttemptNumber].
//
// # Results that outlive the operation
//
// An HTTP response body is read after RoundTrip returns; a gRPC stream is
// consumed after the interceptor returns. Resources taken for such a result
// (a bulkhead slot, an attempt's context) must stay taken until the body is
// closed or the stream ends. The adapter that produced the result calls
// [Hold]; a policy that took something calls [Defer] after its operation
// returns, and the release runs at once when nothing is held, or when the
// holder says it is done. Retry policies [Attempt.Discard] a failed attempt's
// result (draining and closing it) before trying again, and
// [Attempt.Keep] the one they return. When the context the result was held
// in ends first (the caller gave up, a total timeout fired), the result is
// done at once, its outcome not counted ([ErrAbandoned]): a body the caller
// never closes keeps its connection as with plain net/http until then, but
// not a bulkhead slot or a breaker's probe beyond its call's deadline.
//
// Work that runs inside a call without being part of it, such as a
// server's handler, takes [WithoutCall]: the calls it makes are its own.
package resilience
