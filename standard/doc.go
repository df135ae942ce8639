// Package standard builds the recommended pipeline of resilience policies,
// with safe defaults, in the order the best-tested stacks use, outermost
// first:
//
//	total timeout
//	→ rate limit (per host; off unless configured)
//	→ idempotency key (off unless configured)
//	→ retry (or hedging)
//	→ pushback gate (per host)
//	→ circuit breaker (per host)
//	→ bulkhead (per host; off unless configured)
//	→ adaptive concurrency limit (per host; off unless configured)
//	→ attempt timeout
//
// [New] returns it as one resilience.Policy. The adapters wrap it:
// resiliencehttp.Standard for HTTP clients, and resiliencegrpc.Standard for
// gRPC clients, so that every option here configures both. This page is
// where the defaults are stated; the adapters' documentation refers to it.
//
// # Defaults
//
//   - Total timeout 30s, for the whole call, waits included: the rate
//     limit's, the retries' backoff, the pushback gate's and the
//     bulkhead's.
//   - 3 retries (4 attempts at most), exponential backoff from 100ms with
//     jitter, honouring the server's Retry-After up to 10s; only
//     idempotent calls are retried (see package retry).
//   - A retry budget per host (package budget, budget.NewKeyed): each
//     retry or hedge costs 5 tokens of the host's quota of 500, each
//     successful call earns 1, and a retry that succeeds is refunded. A
//     dependency that is down gets one attempt per call once its quota is
//     spent, even before the breaker opens, while calls to the other hosts
//     keep their retries; one that fails 30% of its requests still gets
//     every retry it needs. [WithRetryBudget] changes it,
//     [WithoutRetryBudget] leaves it out.
//   - A circuit breaker per host that opens when at least half of the
//     calls counted over a rolling 30s window failed, once 100 were
//     counted, or at 20 failures in a row within the window, and stays
//     open 5s before one probe. While it is open, calls fail at once with
//     breaker.ErrOpen.
//   - No hedging unless configured ([WithHedging]): it then takes the
//     retry policy's place, shares the retry budget, and gives a call still
//     running after 30ms another attempt beside it.
//   - Attempt timeout 10s. It bounds the time to a response, never a
//     response body or stream the caller is still reading, whether or not
//     the call is retried (timeout.ScopeAttempt); the total timeout bounds
//     those (timeout.ScopeCall).
//   - A pushback gate per host (package pushback): once the evidence says
//     the host is throttling (half of its last 20 answers asked for a
//     pause with Retry-After or grpc-retry-pushback-ms, or a RateLimit
//     field without a partition key has no quota left), later calls to it
//     wait at the gate until the pause ends, capped at the retry's maximum
//     delay (10s); one request's pushback delays only that request's own
//     retry, and a keyed call's "in flight" answer holds nothing; a call whose
//     deadline cannot wait is turned away at once. [WithPushbackGate]
//     changes it, [WithoutPushbackGate] leaves it out.
//   - No idempotency keys unless configured ([WithIdempotencyKeys]): the
//     unsafe calls in scope then get a key, the same on every attempt,
//     which makes them retryable.
//   - No adaptive concurrency limit unless configured
//     ([WithAdaptiveConcurrency]): a per-host limit (package adaptive) on
//     the attempts in flight that follows the host's latency, cut when the
//     host queues and grown back when it stops. An attempt beyond it fails
//     at once with an *adaptive.LimitError (errors.Is adaptive.ErrLimited),
//     refused (resilience.KindRefused) as by an open breaker: it is not
//     retried, and neither the breaker nor the gate counts it; hedges get
//     a slot only while the host shows no queue. Against a host slower
//     than the load it is offered it keeps the successes at the host's
//     capacity with a short queue, where without it callers wait in the
//     host's queue until they give up; in the scenario suite it cost no
//     other scenario a point of success, but with hedging the limiter
//     refuses a replacement attempt after a failure as if it were a hedge
//     beside another, so it is not on by default yet. The README's
//     Overload section gives the figures.
//   - No bulkhead and no rate limit unless configured ([WithBulkhead],
//     [WithRateLimit]); when configured they too are per host. The rate
//     limit paces calls: a call waits for its turn, within the total
//     timeout and its own deadline.
//
// The breaker's rule is chosen by evidence. A breaker is there to detect an
// outage, not to punish a brownout that retries ride through: at the 10%
// some presets use, or at 50% of as few as 20 calls (one fresh count in 15
// at 30% failures), a dependency failing 30% of its requests turns into a
// complete outage for the caller. With at least 100 calls the chance is
// 3.1e-5; 20 failures in a row catch an outage within 20 calls, also for a
// caller who never makes 100 calls in 30s. Package breaker gives the
// computation.
//
// The breaker counts each attempt, so that retries add evidence of an
// outage, but never the caller's own cancellation or deadline, nor the
// total timeout's; the attempt timeout, inside it, counts. The bulkhead
// and the adaptive limit bound attempts in flight, and a wait for a slot
// does not eat into the attempt timeout; the adaptive limit times an
// attempt that runs out of the attempt timeout as a slow one. An open breaker refuses an attempt with
// resilience.KindRefused, which the retry does not retry: the call fails
// fast instead of waiting for the next probe
// (standard.WithBreaker(breaker.WithWaitForProbe()) waits). A full
// bulkhead says so as throttling (resilience.KindThrottled), and the retry
// backs off.
//
// # Validation
//
// New checks the whole configuration and returns an error, naming the
// option to change, rather than a pipeline that cannot work: the attempt
// timeout must not exceed the total timeout, and the breaker's window must
// be at least twice the attempt timeout, or a slow dependency would never
// accumulate the outcomes the breaker needs.
//
// One rule holds for every value: a count, limit or rate that makes no
// sense (a bulkhead of 0 slots, a rate of 0 calls per second, a negative
// number of retries) is an error, never a silent "off". A part is left
// out by name: [WithoutBreaker], [WithoutBulkhead], [WithoutRateLimit]. A
// zero that is meaningful stays valid: WithRetries(0) retries nothing.
//
// Build the pipeline once, when the client is built, and share it between
// calls: each pipeline has its own breakers, bulkheads and rate limits, so
// one built per request would never see a second call.
//
// # Telemetry
//
// [WithName], [WithMeterProvider] and [WithTracerProvider] apply to every
// part of the pipeline at once; a part's own options win. Passing the
// no-op providers turns telemetry off. The module's docs/telemetry.md
// lists every instrument.
package standard
