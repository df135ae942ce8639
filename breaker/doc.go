// Package breaker stops calling a dependency that is failing, and tries it
// again after a while.
//
// A [Breaker] is a resilience.Policy built on github.com/sony/gobreaker/v2.
// It starts closed: calls go through and their outcomes are counted over a
// rolling window of buckets. When they meet one of its rules it opens, and
// for the open duration every call fails at once with an [*OpenError],
// which matches [ErrOpen], without reaching the dependency. Then it turns
// half-open and lets a few probes through: if they all succeed it closes,
// and at the first failure it opens again.
//
// # Rules
//
// The breaker opens when either rule is met within its window (30s by
// default, [WithWindow]):
//
//   - the failure ratio ([WithFailureRatio]): at least half of the calls
//     counted failed, once 100 were counted;
//   - consecutive failures ([WithConsecutiveFailures]): 20 failures in a
//     row, which catches an outage for a caller who never makes 100 calls
//     in 30s, or one that follows a busy healthy period.
//
// [WithSlowCalls] adds a third: the share of calls slower than a threshold.
//
// # Defaults
//
// The defaults are chosen so that a brownout never opens the breaker and an
// outage opens it within 20 calls. A breaker that opens on a brownout turns
// a dependency failing 30% of its calls, which retries ride through, into
// a complete outage for its callers for the open duration.
//
// At 30% failures, the chance that the failures among the counted calls
// ever reach half, checked after each failure from a fresh count (a new
// breaker, or one that just closed: the riskiest moment, since a full
// window holds many more calls), is 3.1e-5 with a minimum of 100 calls;
// it was 6.5% with the previous minimum of 20, and is 0.33% with 50. The
// chance of 20 failures in a row somewhere in 1000 calls at 30% is 2.4e-8
// (0.0041 for 10 in a row). Both are computed exactly (a walk over the
// binomial counts), and the package's tests simulate 2000 brownouts of 400
// calls, sequential and at 16 callers, without an opening, and show the
// old rule opening 21 of 300.
//
// In an outage, 20 failures in a row open the breaker, with or without
// successes in the window, as long as the caller makes 20 calls in 30s;
// a rarer caller never opens it (for such a caller,
// WithConsecutiveFailures with a smaller n, or a longer window). A partial
// outage that fails 70% of calls, where runs of 20 are rare, opens it by
// the ratio once 100 calls were counted. Polly and resilience4j also wait
// for 100 calls, but have no rule for the caller who never makes them.
//
// # What counts
//
// A breaker detects an outage of its dependency, so only the dependency's
// failures count against it, as resilience.Classify reports them:
// transient and permanent failures (connection errors, HTTP 5xx, an
// attempt timeout). Successes count for it. Not counted either way:
//
//   - a throttled or rejected answer (an HTTP 429 or 4xx): the dependency
//     answered, so it also ends a run of consecutive failures;
//   - any error of a call whose own context ended: the caller canceled,
//     the caller's deadline passed, or an outer total timeout fired. Only
//     the breaker's context tells it, so place the breaker inside the
//     total timeout and outside the attempt timeout, whose expiry is the
//     dependency's slowness and counts;
//   - a call refused by a policy inside the breaker, or whose op panicked.
//
// These neither extend nor end a run of consecutive failures. A slow
// success ([WithSlowCalls]) ends it.
//
// # When the outcome is known
//
// An outcome is counted when op returns, through gobreaker's
// CircuitBreaker.Execute, which allocates nothing: a function's error, a
// unary gRPC call's status, an HTTP response's status at its headers (a
// body that fails after a 200 is the reader's error, not counted). A call
// whose outcome comes later says so before it runs, in its description:
// resilience.Call.OutcomeAtEnd, which the gRPC stream interceptor sets.
// For such a call, op returns nil with its result held (resilience.Hold)
// once the call has committed: a stream has received its header.
//
//   - A half-open probe's verdict is the commit: the dependency answered,
//     and the breaker closes at once. A long-lived stream (a watch) taken
//     as the probe does not keep the breaker half-open while it lives.
//   - A call let through while the breaker is closed is counted when its
//     result ends, from its final error, so that a stream that fails
//     halfway counts as a failure; unless the breaker changed state in
//     the meantime, as the outcomes of calls that began in an earlier
//     state are dropped.
//
// Neither takes a goroutine or holds a probe's place for the life of the
// stream; Breaker.Do's code says why it does not use gobreaker's two-step
// API.
//
// # Failing fast, and waiting for the probe
//
// An open breaker fails fast: the error of a call turned away is marked
// resilience.KindRefused, which no retry policy retries, so the call
// returns at once with an error matching ErrOpen (the gRPC adapter maps it
// to Unavailable, still matching with errors.Is). [OpenError.RetryIn] says
// when the next probe goes. [WithWaitForProbe] makes a retry policy wait
// for the probe instead, each caller with its own random delay after it,
// so that waiting callers do not come back together.
//
// Place the breaker inside the retry policy, so that each attempt is
// counted: the recommended order is rate limit, total timeout, retry,
// breaker, bulkhead, per-attempt timeout.
//
// # One breaker per dependency
//
// A [Keyed] breaker keeps one breaker per key, by default the call's target
// host:port (resilience.Call.Target), so that an outage of one host does
// not turn away calls to the others. Its breakers live in a bounded
// registry that forgets idle keys ([WithMaxKeys], [WithIdleTimeout]), and
// each has at most [MaxBuckets] buckets.
//
// # State changes
//
// [WithOnStateChange] reports every change of state. It is called outside
// any lock, so it may call back into the breaker.
//
// # Telemetry
//
// resilience.breaker.state reports each breaker's state at every
// collection, three series per breaker: 1 for its current state, 0 for the
// other two, so that each state's series is continuous; state changes and rejected calls are
// counted in resilience.events and added as span events
// (resilience.breaker.opened, ...) to the recording span in the call's
// context. A [Keyed] breaker keyed by target reports each host's breaker
// with its server.address and server.port; one keyed with [WithKey]
// reports how many breakers are in each state, so that keys never become
// attribute values. An evicted key's state is no longer reported. The
// module's docs/telemetry.md lists every instrument.
package breaker
