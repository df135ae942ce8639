// Package throttle turns calls away locally, with a probability that grows
// as the dependency refuses them: the adaptive client-side throttling of
// Google's SRE book ("Handling Overload").
//
// A [Throttle] is a resilience.Policy. Over a sliding window (30 seconds
// by default, [WithWindow]) it counts requests, every call it saw,
// including those it turned away, and accepts, the calls the dependency
// answered. While the dependency accepts, requests and accepts grow
// together and nothing is turned away. When it starts refusing (HTTP 429 or
// 503, gRPC RESOURCE_EXHAUSTED or UNAVAILABLE, timeouts, connections
// refused), accepts fall behind, and once requests exceed K times the
// accepts (K = 2 by default, [WithK]) each call is turned away with
// probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// capped at 0.9 ([WithMaxProbability]), with a [*RejectedError] (matching [ErrRejected]), without reaching the
// dependency. The dependency then sees about K times what it accepts: its
// effort on refusals stays bounded, and it keeps receiving enough calls to
// show, through rising accepts, that it has recovered; the throttle lets
// all calls through again about one window after that. The throttle keeps
// no timer and starts no goroutine.
//
// A [Keyed] throttle keeps one throttle per key, by default the call's
// target host, in a bounded registry that forgets idle keys.
//
// # Where it goes
//
// Place the throttle per attempt, where the breaker goes (inside the retry,
// outside the per-attempt timeout), so that every attempt counts as a
// request and an attempt cut by the per-attempt timeout as a refusal.
// [RejectedError] is marked as refused (resilience.KindRefused): a retry
// does not retry it and a breaker does not count it. Throttle and breaker
// answer the same question differently: the breaker stops all calls after
// failures and probes; the throttle lets a share through that follows the
// dependency's acceptance.
//
// # Telemetry
//
// resilience.throttle.probability reports the probability of rejection at
// every collection (per host for a [Keyed] throttle keyed by target, the
// highest over keys for one keyed with [WithKey] or [WithoutServerAddress];
// evicted keys drop out). Calls turned away are counted in resilience.events
// (event rejected) and added as the span event resilience.throttle.rejected,
// with the probability drawn against. The module's docs/telemetry.md lists
// every instrument.
package throttle
