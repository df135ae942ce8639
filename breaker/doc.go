// Package breaker stops calling a dependency that is failing, and tries it
// again after a while.
//
// A [Breaker] is a resilience.Policy with a small state machine of its own.
// (It began on github.com/sony/gobreaker/v2, whose two-step API, the only
// one that can count the outcome of a response body or stream when it
// ends, allocates a closure on every call; this one allocates nothing on
// the success path and keeps gobreaker's semantics: a rolling window of
// buckets, generations that drop stale outcomes, half-open probes.)
// It starts closed: calls go through and their outcomes are counted. When
// the failures reach its threshold it opens, and for the open duration
// every call fails at once with an [*OpenError], which matches [ErrOpen],
// without reaching the dependency. Then it turns half-open and lets a few
// probes through: if they all succeed it closes, and at the first failure
// it opens again.
//
// Two thresholds are offered:
//
//   - a failure ratio over a rolling window ([WithFailureRatio],
//     [WithWindow]), the default: open when at least half of the calls
//     counted in the last 30 seconds failed, once 20 were counted, or
//     when the last 20 all failed;
//   - consecutive failures ([WithConsecutiveFailures]).
//
// # What counts
//
// A breaker detects an outage of its dependency, so only the dependency's
// failures count against it, as resilience.Classify reports them:
// transient and permanent failures (connection errors, timeouts, HTTP 5xx).
// Successes count for it. Nothing else is counted either way: not a
// rejection (an HTTP 4xx, the caller's mistake), not throttling (HTTP 429,
// or another policy turning the call away), and not the caller's
// cancellation. When the result outlives the call, such as an HTTP
// response body read after RoundTrip returns, its outcome is counted when
// it ends (see resilience.Hold).
//
// # Failing fast, and retrying
//
// The error of a call turned away is marked as throttled
// (resilience.KindThrottled) with the time until the next probe
// (resilience.RetryAfter), so a retry policy outside the breaker waits for
// that moment instead of spinning. Place the breaker inside the retry
// policy, so that each attempt is counted: the recommended order is rate
// limit, total timeout, retry, breaker, bulkhead, per-attempt timeout.
//
// # One breaker per dependency
//
// A [Keyed] breaker keeps one breaker per key, by default the call's target
// host (resilience.Call.Target), so that an outage of one host does not
// turn away calls to the others. Its breakers live in a bounded registry
// that forgets idle keys ([WithMaxKeys], [WithIdleTimeout]).
//
// # State changes
//
// [WithOnStateChange] reports every change of state. It is called outside
// any lock, so it may call back into the breaker.
//
// # Telemetry
//
// resilience.breaker.state reports each breaker's state at every
// collection; state changes and rejected calls are counted in
// resilience.events and added as span events (resilience.breaker.opened,
// ...) to the recording span in the call's context. A [Keyed] breaker
// keyed by target reports each host's breaker with its server.address; one
// keyed with [WithKey] reports how many breakers are in each state, so
// that keys never become attribute values. An evicted key's state is no
// longer reported. The module's docs/telemetry.md lists every instrument.
package breaker
