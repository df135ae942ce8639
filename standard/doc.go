// Package standard builds the recommended pipeline of resilience policies,
// with safe defaults, in the order the best-tested stacks use:
//
//	rate limit → total timeout → retry (or hedging) → circuit breaker → bulkhead → attempt timeout
//
// [New] returns it as one resilience.Policy. The adapters wrap it:
// resiliencehttp.Standard for HTTP clients, and the gRPC adapter likewise,
// so that every option here configures both.
//
// # Defaults
//
//   - Total timeout 30s, for the whole call, waits included.
//   - 3 retries (4 attempts at most), exponential backoff from 100ms with
//     jitter, honouring the server's Retry-After up to 10s; only
//     idempotent calls are retried (see package retry).
//   - A retry budget shared by every call through the pipeline (package
//     budget): each retry costs 5 tokens of a quota of 500, each
//     successful call earns 1, and a retry that succeeds is refunded. A
//     dependency that is down gets one attempt per call once the quota is
//     spent, even before the breaker opens; one that fails 30% of its
//     requests still gets every retry it needs. [WithRetryBudget] changes
//     it, [WithoutRetryBudget] leaves it out.
//   - A circuit breaker per host that opens when at least half of the
//     calls counted over a rolling 30s window failed, once 20 were
//     counted, or when the last 20 all failed, and stays open 5s before
//     one probe.
//   - No hedging unless configured ([WithHedging]): it then takes the
//     retry policy's place, shares the retry budget, and gives a call still
//     running after 30ms another attempt beside it.
//   - Attempt timeout 10s.
//   - No bulkhead and no rate limit unless configured ([WithBulkhead],
//     [WithRateLimit]); when configured they too are per host.
//
// The breaker's threshold is deliberately high. A breaker is there to
// detect an outage, not to punish a brownout that retries ride through: at
// the 10% some presets use, a dependency failing 30% of its requests, or a
// slow tail cut by the attempt timeout, turns into a complete outage for
// the caller.
//
// The breaker counts each attempt, so that retries add evidence of an
// outage; the bulkhead bounds attempts in flight, and its wait for a slot
// does not eat into the attempt timeout. A breaker or bulkhead that turns
// an attempt away says so to the retry policy (resilience.KindThrottled):
// the retry waits for the breaker's next probe instead of spinning.
//
// # Validation
//
// New checks the whole configuration and returns an error rather than a
// pipeline that cannot work: the attempt timeout must not exceed the total
// timeout, and the breaker's window must be at least twice the attempt
// timeout, or a slow dependency would never accumulate the outcomes the
// breaker needs.
//
// # Telemetry
//
// [WithName], [WithMeterProvider] and [WithTracerProvider] apply to every
// part of the pipeline at once; a part's own options win. Passing the
// no-op providers turns telemetry off. The module's docs/telemetry.md
// lists every instrument.
package standard
