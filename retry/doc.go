// Package retry runs an operation again when it fails in a way that may
// pass.
//
// A [Policy] makes at most a fixed number of attempts (4 by default: the
// first call and three retries), waiting between them for an exponentially
// growing, jittered delay computed by github.com/cenkalti/backoff/v4. It is
// safe by default:
//
//   - Only retryable outcomes are retried: transient failures and pushback
//     (resilience.Kind.Retryable). Permanent failures, rejections (HTTP 4xx)
//     and the caller's cancellation are returned at once.
//   - A call that is not idempotent (resilience.Call.Idempotent is false)
//     is never sent twice; an HTTP POST is idempotent only when it carries
//     an Idempotency-Key.
//   - A server's requested delay (resilience.RetryAfter, from Retry-After or
//     grpc-retry-pushback-ms) replaces the computed one, capped at the
//     policy's maximum delay.
//   - Only a retryable failure's requested delay is honoured; a failure
//     that is not retryable (an open breaker failing fast, a rejection)
//     is returned at once, whatever delay it carries.
//   - Every wait honours the context: cancellation ends it at once and Do
//     returns the context's error. A wait that would end less than the
//     minimum attempt time ([WithMinAttemptTime], 10ms by default) before
//     the context's deadline is not started: Do gives up with the last
//     result ([ErrDeadline]).
//   - No attempt starts for a context that is done or past its deadline,
//     even when the wait and the deadline end at the same instant, or the
//     process was too starved to notice the deadline in time: Do returns
//     the context's error instead. A retry whose wait ended with less than
//     the minimum attempt time left is not made either: Do gives up with
//     the last result ([ErrTooLate]).
//   - A failed attempt's result is discarded (a response body drained and
//     closed) before the wait, so its connection is reused.
//   - With a retry budget ([WithBudget], package budget), every retry pays
//     for itself from a token quota that successful calls refill, so that
//     retries cannot multiply the load on a dependency that is down.
//   - An answer that the call itself is still in flight on the server (an
//     earlier attempt under the same idempotency key still runs: throttled,
//     with a delay for this call alone, resilience.PushbackCall; HTTP 409
//     with Retry-After, gRPC Aborted, to a keyed call) is asked again after
//     its delay without spending an attempt or a budget token, up to ten
//     times beyond the attempts and never past the deadline: the caller
//     gets the first attempt's recorded result, not the "in flight".
//
// When it gives up on a retryable failure, Do returns an [*Error] that says
// how many attempts were made and why it stopped, and wraps the last
// attempt's error. Errors that were not retryable are returned unchanged.
//
// Place the policy inside a total timeout and outside a per-attempt
// timeout: resilience.Chain(timeout.New(total), retry.New(), timeout.New(perAttempt)).
//
// # Telemetry
//
// Every attempt's duration is recorded in resilience.attempt.duration, with
// its number and outcome: the time the dependency had it, without the time
// a policy inside held it (a pushback gate, a bulkhead), and not at all for
// an attempt a policy inside turned away unsent (an open breaker); each retry scheduled and each failure given up on
// is counted in resilience.events and added as a span event
// (resilience.retry.scheduled, resilience.retry.exhausted, whose reason is
// exhausted, max_elapsed, deadline, too_late, budget or no_retry, and
// resilience.retry.budget_exhausted when the budget refused a retry) to the recording
// span in the call's context. [WithName] names the policy;
// [WithMeterProvider] and [WithTracerProvider] replace the global
// providers. The module's docs/telemetry.md lists every instrument.
package retry
