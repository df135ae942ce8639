// Package hedge cuts a dependency's slow tail by sending extra attempts of
// a call that is taking long, beside the first, and returning the first
// acceptable result.
//
// A [Policy] starts the first attempt at once. If it has not returned
// after a delay (fixed, [WithDelay], or a quantile of the latencies it
// observed, [WithDelayQuantile]), it starts a hedge beside it, and so on up
// to [WithMaxHedges] extra attempts. An attempt that fails in a way another
// attempt may fix (a transient failure) starts the next hedge at once
// instead of waiting. Pushback is not answered that way: an attempt turned
// away (an open breaker, a full bulkhead, an HTTP 429, an HTTP 409 for the
// call's idempotency key still in flight) is not replaced, never wins over
// an attempt still running, and when no other attempt runs its error is
// returned as it is, so that an open breaker fails fast, unless the
// dependency said when to come back.
//
// A delay the dependency asked for (resilience.RetryAfter on a retryable
// failure: Retry-After, grpc-retry-pushback-ms) is waited out as the retry
// policy waits it out: no attempt of the call starts before it ends,
// whether it came with a failure (a 503) or turned an attempt away (a 429;
// a 409 in flight, after which the next attempt asks again with the same
// key and gets the first one's recorded answer); when no other attempt
// runs, the next one starts when it ends. A delay is capped at 10s, and
// one that ends less than 10ms before the call's deadline ends the call
// with the attempt's error instead. The first attempt to succeed, or to
// fail in a way no other attempt would fix (an HTTP 404), wins:
//
//   - the others are cancelled; Do waits for them to return, discards
//     their results (a response body drained and closed) and releases what
//     they held (a bulkhead slot, a breaker's probe), so that no goroutine
//     outlives the call;
//   - the winner's result is the call's: what it holds (a response body
//     still to read) stays held until the caller is done with it.
//
// When every attempt failed, Do returns an [*Error] wrapping the last
// failure, whose reason is [ErrExhausted], or [ErrBudget] when the retry
// budget refused a hedge. The caller's cancellation stops every attempt and
// is returned as the caller's context error.
//
// # Safety
//
//   - Only idempotent calls are hedged (resilience.Call.Idempotent: for
//     HTTP, safe methods and requests with an Idempotency-Key); other calls,
//     and calls that must not be sent again (resilience.Call.NoRetry), run
//     once, as they are.
//   - Hedges count against a retry budget shared with retries
//     ([WithBudget], package budget): a hedge costs tokens before it is
//     sent, a hedge that wins is refunded, and over budget no hedge is
//     sent.
//   - Attempts run in parallel, each with its own result cell
//     (resilience.StartParallelAttempt): the adapters give each attempt its
//     own request body (HTTP GetBody) and its own reply (gRPC), and copy
//     only the winner's into the caller's (resilience.OnKeep).
//   - Calls whose attempts must not overlap (resilience.Call.Sequential:
//     gRPC streams) are not hedged: a failed attempt is followed by the
//     next one at once, as a retry without backoff would.
//
// The policy takes the retry policy's place in a pipeline, so that every
// hedge passes the per-host breaker, bulkhead and gate like any attempt:
// resilience.Chain(timeout.New(total), hedge.New(), breaker.NewKeyed(), timeout.New(perAttempt)).
// The standard pipeline does this with standard.WithHedging.
//
// # Telemetry
//
// Every attempt's duration is recorded in resilience.attempt.duration (as
// for retry: the time the dependency had it; attempts turned away unsent are
// not recorded).
// Each hedge sent, each hedge that won, each attempt cancelled because
// another won and each hedge refused by the budget is counted in
// resilience.events (sent, won, cancelled, budget_exhausted) and added as a
// span event (resilience.hedge.sent, ...) to the recording span in the
// call's context. See the module's docs/telemetry.md.
package hedge
